"""Every parameter of the table x both regimes x every entry point.

Regimes: stateful (the random 'hpn' voice) and windowed (a small non-causal test model whose
own level is constant, so only the engine's loudness matching can make it follow the singer).
Entry points: Converter, StreamingConverter, VoiceConversion (reset=True and reset=False),
render_file and the server Session; each returns output time-aligned with the input.
Each parameter must change the output as its table entry says, and the entry points must agree
with each other: to 1e-4 for the stateful regime, on the 10 ms level envelope (1.5 dB median)
for the windowed one (offline slices and streamed windows are inferred differently).
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
import soundfile as sf

from svc_dsp.engine.converter import Converter
from svc_dsp.engine.parameters import PARAMETERS
from svc_dsp.engine.streaming import StreamingConverter
from svc_dsp.errors import ParameterError
from svc_dsp.models.base import WindowedModel

SR = 24000
BLOCK = 480


class SmallWindowedModel(WindowedModel):
    """Non-causal: each window is synthesised from scratch from its F0 (phase restarts at the window
    start), at a constant level of 0.1 whatever the input's level; speaker 'b' is brighter."""

    family = "matrix-test"

    def __init__(self) -> None:
        self.config: dict[str, Any] = {"sample_rate": SR, "hop_size": 120, "speakers": ["a", "b"],
                                       "f0_range": [80.0, 1000.0], "name": "matrix-windowed"}
        self.folder = None

    def convert_window(self, audio: np.ndarray, f0: np.ndarray, spk: np.ndarray, *, uv: np.ndarray | None = None,
                       noise_scale: float = 0.4, seed: int = 52468, cluster_ratio: float | None = None,
                       index_ratio: float = 0.0) -> np.ndarray:
        n, hop = audio.shape[0], self.hop_size
        centres = (np.arange(f0.shape[0]) + 1) * hop
        f = np.interp(np.arange(n), centres, np.where(f0 > 0, f0, 0.0))
        ph = 2 * np.pi * np.cumsum(f) / SR
        w = np.asarray(spk, np.float64)
        b = float(w[1] if w.ndim == 1 else w[1].mean())
        voice = np.sin(ph) + (0.2 + 0.6 * b) * np.sin(2 * ph)
        return (0.1 * voice * (f > 0)).astype(np.float32)


def _signal() -> np.ndarray:
    """0.3 s loud, 0.3 s 18 dB quieter, 0.25 s at -45 dB (a gate's job), 0.25 s loud: a sung tone."""
    t = np.arange(int(1.1 * SR)) / SR
    f = 220.0 * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t) / 12)
    ph = 2 * np.pi * np.cumsum(f) / SR
    x = np.sin(ph) + 0.4 * np.sin(2 * ph) + 0.2 * np.sin(3 * ph)
    env = np.ones_like(t) * 0.3
    env[int(0.3 * SR):int(0.6 * SR)] *= 10 ** (-18 / 20)
    env[int(0.6 * SR):int(0.85 * SR)] = 0.3 * 10 ** (-45 / 20)
    return (env * x).astype(np.float32)


X = _signal()
LOUD, QUIET, SILENT = slice(int(0.1 * SR), int(0.28 * SR)), slice(int(0.4 * SR), int(0.58 * SR)), \
    slice(int(0.72 * SR), int(0.84 * SR))


def _rms_db(y: np.ndarray, part: slice) -> float:
    return float(10 * np.log10(np.mean(np.asarray(y[part], np.float64) ** 2) + 1e-20))


def _stream(process: Callable[[np.ndarray], np.ndarray], latency: int, x: np.ndarray) -> np.ndarray:
    xx = np.concatenate([x, np.zeros(latency, np.float32)])
    return np.concatenate([process(xx[i:i + BLOCK]) for i in range(0, xx.shape[0], BLOCK)])[latency:]


def _converter(m: Any, p: dict[str, Any], tmp: Any) -> np.ndarray:
    return Converter(m, **p).convert(X, SR)


def _streaming(m: Any, p: dict[str, Any], tmp: Any) -> np.ndarray:
    sc = StreamingConverter(m, SR, BLOCK, backend="torch", **p)
    return _stream(sc.process, sc.latency_samples, X)


def _vc_reset(m: Any, p: dict[str, Any], tmp: Any) -> np.ndarray:
    from host_bridge.effect import VoiceConversion

    return VoiceConversion(m, backend="torch", **p)(X, SR, buffer_size=BLOCK, reset=True)


def _vc_stream(m: Any, p: dict[str, Any], tmp: Any) -> np.ndarray:
    from host_bridge.effect import VoiceConversion

    fx = VoiceConversion(m, backend="torch", **p)
    return _stream(lambda b: fx(b, SR, reset=False), fx.latency_at(SR), X)


def _render(m: Any, p: dict[str, Any], tmp: Any) -> np.ndarray:
    from host_bridge.effect import VoiceConversion
    from host_bridge.render import render_file

    src, dst = tmp / "in.wav", tmp / "out.wav"
    sf.write(src, X, SR, subtype="FLOAT")
    res = render_file(src, dst, VoiceConversion(m, backend="torch", **p), existing="overwrite")
    assert res.status == "ok", res
    return sf.read(dst, dtype="float32")[0]


def _session(m: Any, p: dict[str, Any], tmp: Any) -> np.ndarray:
    from host_bridge.server.audio_io import EngineHost
    from host_bridge.server.session import Session
    from svc_dsp.engine.parameters import defaults

    def make(model: Any, values: dict[str, Any]) -> StreamingConverter:
        return StreamingConverter(model, SR, BLOCK, backend="torch", **values)

    s = Session(m, m.name, defaults(), EngineHost(make(m, defaults()), SR, BLOCK, 0), make_converter=make)
    try:
        for k, v in p.items():  # validated, echoed, handed to the engine (f0_method rebuilds it)
            s.set_param(k, v)
        host = EngineHost(make(m, s.values), SR, BLOCK, 0)  # a fresh stream: no ramps from the defaults
        s.host = host
        out = np.zeros(BLOCK, np.float32)

        def period(b: np.ndarray) -> np.ndarray:
            inp = np.zeros(BLOCK, np.float32)
            inp[:b.shape[0]] = b
            host.process_period(inp, out)
            return out[:b.shape[0]].copy()
        return _stream(period, host.latency_samples, X)
    finally:
        s.close()


ENTRIES = {"converter": _converter, "streaming": _streaming, "vc_reset": _vc_reset, "vc_stream": _vc_stream,
           "render": _render, "session": _session}
STREAMING_ENTRIES = ("streaming", "vc_stream", "session")

#: parameter -> the value that must change the output as documented
CHANGED = {"transpose": 7.0, "speaker": "tenor", "speaker_mix": {"alto": 0.5, "tenor": 0.5}, "f0_method": "harvest",
           "loudness_match": 0.0, "gate_db": -30.0, "mix": 0.0, "output_gain_db": -6.0, "bypass": True,
           "cluster_ratio": 0.8, "index_ratio": 0.8}


@pytest.fixture(scope="module", params=["stateful", "windowed"])
def regime(request, random_model):
    if request.param == "stateful":
        return request.param, random_model
    return request.param, SmallWindowedModel()


def _value(model: Any, name: str) -> Any:
    v = CHANGED[name]
    names = model.speakers
    if name == "speaker":
        return names[1]
    if name == "speaker_mix":
        return {names[0]: 0.5, names[1]: 0.5}
    return v


_cache: dict[tuple, np.ndarray] = {}


def _run(kind: str, model: Any, entry: str, params: tuple, tmp: Any) -> np.ndarray:
    key = (kind, entry, params)
    if key not in _cache:
        _cache[key] = ENTRIES[entry](model, _thaw(params), tmp)
    return _cache[key]


def _frozen(p: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(sorted(v.items())) if isinstance(v, dict) else v) for k, v in p.items()))


def _thaw(t: tuple) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, tuple) else v for k, v in t}


def test_matrix_covers_the_table():
    assert set(CHANGED) == set(PARAMETERS), "a parameter of the table has no row in the matrix"


@pytest.mark.parametrize("entry", list(ENTRIES))
@pytest.mark.parametrize("name", list(PARAMETERS))
def test_parameter_changes_output_as_documented(regime, name, entry, tmp_path):
    kind, m = regime
    value = _value(m, name)
    if name == "f0_method" and entry in STREAMING_ENTRIES:
        with pytest.raises(ParameterError, match="offline"):
            ENTRIES[entry](m, {name: value}, tmp_path)
        return
    base = _run(kind, m, entry, (), tmp_path)
    y = _run(kind, m, entry, _frozen({name: value}), tmp_path)
    assert y.shape == X.shape and np.isfinite(y).all()
    if name in ("cluster_ratio", "index_ratio"):  # documented: voices without centres / an index ignore it
        np.testing.assert_allclose(y, base, atol=1e-6)
    elif name in ("mix", "bypass"):  # the dry input only (time-aligned)
        np.testing.assert_allclose(y, X, atol=1e-4)
    elif name == "output_gain_db":
        np.testing.assert_allclose(y, base * 10 ** (-6 / 20), atol=1e-4)
    elif name == "loudness_match":
        # 1 (default): the output's loud/quiet step follows the input's 18 dB; 0: the model's own
        step_in = _rms_db(X, LOUD) - _rms_db(X, QUIET)
        step_base, step_own = (_rms_db(base, LOUD) - _rms_db(base, QUIET), _rms_db(y, LOUD) - _rms_db(y, QUIET))
        assert abs(step_base - step_in) < 3.0, (step_base, step_in)
        assert abs(step_own - step_in) > abs(step_base - step_in) + 3.0, (step_own, step_base, step_in)
    elif name == "gate_db":
        # -45 dB input: open at the default -60 dB gate, closed (silent) at -30 dB; the rest stays
        assert _rms_db(base, SILENT) > -90.0
        assert _rms_db(y, SILENT) < _rms_db(base, SILENT) - 40.0
        assert abs(_rms_db(y, LOUD) - _rms_db(base, LOUD)) < 0.5
    else:  # transpose, speaker, speaker_mix, f0_method: a different voice or pitch
        diff = _rms_db(y - base, LOUD) - _rms_db(base, LOUD)
        assert diff > -20.0, f"{name}={value!r} left the output unchanged ({diff:.1f} dB difference)"


def _envelope_db(y: np.ndarray) -> np.ndarray:
    hop = SR // 100
    k = y.shape[0] // hop
    return 10 * np.log10(np.mean(y[:k * hop].reshape(k, hop).astype(np.float64) ** 2, axis=1) + 1e-10)


# (mix is left at 1 here: a wet signal of another phase sums differently with the dry one)
SETTINGS = [{}, {"transpose": -3.0, "loudness_match": 0.5, "gate_db": -30.0, "output_gain_db": 3.0}]


@pytest.mark.parametrize("setting", range(len(SETTINGS)))
@pytest.mark.parametrize("entry", [e for e in ENTRIES if e != "converter"])
def test_entry_points_agree(regime, entry, setting, tmp_path):
    kind, m = regime
    p = _frozen(SETTINGS[setting])
    ref = _run(kind, m, "converter", p, tmp_path)
    y = _run(kind, m, entry, p, tmp_path)
    if kind == "stateful":
        np.testing.assert_allclose(y, ref, atol=1e-4)
        return
    a, b = _envelope_db(y), _envelope_db(ref)
    audible = (a > -60) | (b > -60)
    assert np.median(np.abs(a - b)[audible]) < 1.5, np.median(np.abs(a - b)[audible])
    assert abs(_rms_db(y, SILENT) - _rms_db(ref, SILENT)) < 10.0 or max(_rms_db(y, SILENT), _rms_db(ref, SILENT)) < -80
