"""The engine's spine, shared by every entry point (Converter, StreamingConverter, the effect,
render and the server):

- :class:`ParameterStore`: validates a value once (table range, the model's speakers), keeps the
  targets in one dict that is replaced whole (a control thread's change is seen by the audio
  thread completely or not at all, without a lock);
- :class:`ModelStage`: the regime dispatch (stateful or windowed model stage) followed by
  :class:`FrameDynamics` (loudness matching and gate), so both regimes apply them the same way;
- :func:`run_compensated` / :class:`LatencyCompensator`: a stream run offline: the input, then
  ``latency`` samples of silence, with the first ``latency`` output samples dropped;
- :func:`run_blocks`: a whole array through a block processor in blocks of at most ``block``;
- :func:`mix_and_gain`: dry/wet and output gain of an offline render.

:class:`svc_dsp.engine.voice_processor.VoiceProcessor` puts these together for the adapters
(the effect, a chain, render).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from svc_dsp.engine.dynamics import DcBlocker, Gate, LoudnessMatcher, apply_frame_gains, hop_mean_square
from svc_dsp.engine.parameters import defaults, parameter
from svc_dsp.engine.stateful_stage import PARAM_SMOOTH_S, StatefulStage
from svc_dsp.engine.windowed import WindowedStage, WindowSettings
from svc_dsp.errors import ParameterError, SvcError
from svc_dsp.models.base import VoiceModel

Targets = Callable[[], Mapping[str, Any]]


class ParameterStore:
    """Parameter values of one engine, validated once.

    ``set`` checks the value against the table and, for ``speaker``/``speaker_mix``, against the
    model's speakers (``UnknownSpeakerError`` lists them), then swaps in a new dict: readers
    (:meth:`targets`) see the old or the new values, never half. Names in ``fixed`` cannot change
    once :meth:`freeze` was called (``f0_method`` inside a running stream).
    """

    def __init__(self, model: VoiceModel, values: Mapping[str, Any] | None = None) -> None:
        self.model = model
        self._values: dict[str, Any] = defaults()
        self._frozen: dict[str, str] = {}
        if values:
            self.update(values)

    def validate(self, name: str, value: Any) -> tuple[str, Any]:
        """(canonical name, validated value) or ParameterError / UnknownSpeakerError."""
        p = parameter(name)
        v = p.validate(value)
        if p.name == "speaker" and v is not None:
            self.model.speaker_weights(v)
        if p.name == "speaker_mix" and v is not None:
            self.model.speaker_weights(None, v)
        if p.name in self._frozen and v != self._values[p.name]:
            raise ParameterError(self._frozen[p.name])
        return p.name, v

    def set(self, name: str, value: Any) -> Any:
        """Validate and store one value; returns the stored (canonical) value."""
        key, v = self.validate(name, value)
        self._values = {**self._values, key: v}
        return v

    def update(self, values: Mapping[str, Any]) -> list[str]:
        """Validate every value first, then store all in one swap (nothing changes on an error).
        Returns the canonical names whose value changed."""
        new = dict(self._values)
        for k, v in values.items():
            key, val = self.validate(k, v)
            new[key] = val
        changed = [k for k in new if new[k] != self._values[k]]
        self._values = new
        return changed

    def fork(self, changes: Mapping[str, Any]) -> "ParameterStore":
        """A new store for the same model, not frozen: these values as here, ``changes`` validated
        and applied (what a new stream starts from when ``f0_method`` changes)."""
        new = ParameterStore(self.model)
        new._values = dict(self._values)
        new.update(changes)
        return new

    def freeze(self, name: str, reason: str) -> None:
        """From now on a different value of ``name`` is refused with ``reason``."""
        self._frozen[parameter(name).name] = reason

    def get(self, name: str) -> Any:
        return self._values[parameter(name).name]

    def targets(self) -> Mapping[str, Any]:
        """The current values (one dict, never changed in place: keep it for a whole block)."""
        return self._values

    @property
    def values(self) -> dict[str, Any]:
        """A copy of the current values."""
        return dict(self._values)


def carry_values(model: VoiceModel, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Values from one model's store for another ``model``: a ``speaker`` or ``speaker_mix`` that
    ``model`` lacks goes back to its default (None) and is named in the returned list."""
    vals, dropped = dict(values), []
    check = ParameterStore(model)
    for k in ("speaker", "speaker_mix"):
        try:
            check.validate(k, vals[k])
        except SvcError:
            vals[k] = None
            dropped.append(k)
    return vals, dropped


class FrameDynamics:
    """``loudness_match`` and ``gate_db`` after the model stage, on the model's frame grid.

    feed(x): the stage's input (float32, model rate, DC-blocked), any amount; apply(wave): the
    stage's output (a whole number of hops) -> the same with per-frame gains. Output frame j is
    matched with input frame j - ``lead_frames`` (frames the stage emits before the signal's
    first frame; they meet silence). ``loudness_match`` is smoothed per frame.
    """

    def __init__(self, sample_rate: int, hop: int, targets: Targets, lead_frames: int = 0) -> None:
        self.hop, self.targets, self.lead = hop, targets, int(lead_frames)
        hop_s = hop / sample_rate
        self.a_param = math.exp(-hop_s / PARAM_SMOOTH_S)
        self.matcher = LoudnessMatcher(hop_s)
        self.gate = Gate(hop_s)
        self.reset()

    def reset(self) -> None:
        self.pending = np.zeros(0, np.float32)
        self.ms_in = np.zeros(self.lead, np.float64)
        self.matcher.reset()
        self.gate.reset()
        self.gain_prev = 0.0
        self.lmatch = float(self.targets()["loudness_match"])

    def feed(self, x: np.ndarray) -> None:
        hop = self.hop
        buf = np.concatenate([self.pending, x]) if self.pending.size else np.asarray(x, np.float32)
        k = buf.shape[0] // hop
        if k:
            self.ms_in = np.concatenate([self.ms_in, hop_mean_square(buf[:k * hop], hop)])
        self.pending = buf[k * hop:]

    def apply(self, wave: np.ndarray) -> np.ndarray:
        hop = self.hop
        k = wave.shape[0] // hop
        if k == 0:
            return wave
        ms_i = self.ms_in[:k]
        if ms_i.shape[0] < k:  # never expected: a stage emits no frame before its input arrived
            ms_i = np.concatenate([ms_i, np.zeros(k - ms_i.shape[0])])
        self.ms_in = self.ms_in[k:]
        t = self.targets()
        target = float(t["loudness_match"])
        lm = target + (self.lmatch - target) * self.a_param ** np.arange(1, k + 1)
        self.lmatch = float(lm[-1])
        g_db = self.matcher.gains_db(ms_i, hop_mean_square(wave[:k * hop], hop), lm)
        g = 10.0 ** (g_db / 20.0) * self.gate.gains(ms_i, float(t["gate_db"]))
        out, self.gain_prev = apply_frame_gains(wave[:k * hop], g, self.gain_prev, hop)
        return out


class ModelStage:
    """Model-rate part of a stream for either regime: DC blocker -> the regime's stage (F0,
    transpose, speaker, model) -> :class:`FrameDynamics`.

    push(x: float32 (n,) at the model rate) -> converted float32 samples as they become ready.
    input_needed(s): last model-input index that model-output sample ``s`` needs.
    """

    def __init__(self, model: VoiceModel, f0_method: str, targets: Targets, *, f0_track: np.ndarray | None = None,
                 window: WindowSettings | None = None, hops_per_step: int = 1) -> None:
        sr, hop = model.sample_rate, model.hop_size
        self.dc = DcBlocker(sr)
        self.core: StatefulStage | WindowedStage
        if model.regime == "windowed":
            self.core = WindowedStage(model, f0_method, targets, window)  # type: ignore[arg-type]
        elif model.regime == "stateful":
            self.core = StatefulStage(model, f0_method, targets, f0_track, hops_per_step)  # type: ignore[arg-type]
        else:
            raise ParameterError(f"model '{model.name}': unknown regime {model.regime!r}")
        self.dynamics = FrameDynamics(sr, hop, targets, self.core.lead_samples // hop)

    def __getattr__(self, name: str) -> Any:
        """The regime stage's own figures (``step``, ``window``, ``hop``, ``delay``...) read through."""
        core = self.__dict__.get("core")
        if core is None:
            raise AttributeError(name)
        return getattr(core, name)

    def reset(self) -> None:
        self.dc.reset()
        self.core.reset()
        self.dynamics.reset()

    def input_needed(self, s: np.ndarray) -> np.ndarray:
        return self.core.input_needed(s)

    def push(self, x: np.ndarray) -> np.ndarray:
        x = self.dc(x)
        self.dynamics.feed(x)
        return self.dynamics.apply(self.core.push(x))


def frame_dynamics(xm: np.ndarray, wet: np.ndarray, hop: int, sr: int, loudness_match: float,
                   gate_db: float) -> np.ndarray:
    """Offline :class:`FrameDynamics` over a whole signal: xm (input) and wet (N,) at the model rate,
    time-aligned -> wet with loudness matching and gate, (N,)."""
    n = xm.shape[0]
    k = -(-n // hop)
    xi = np.zeros(k * hop, np.float32)
    xi[:n] = xm
    xo = np.zeros(k * hop, np.float32)
    xo[:n] = wet[:n]
    vals = {"loudness_match": float(loudness_match), "gate_db": float(gate_db)}
    dyn = FrameDynamics(sr, hop, lambda: vals)
    dyn.feed(xi)
    return dyn.apply(xo)[:n]


def mix_and_gain(wet: np.ndarray, dry: np.ndarray, mix: float, gain_db: float) -> np.ndarray:
    """wet (N,) or (C, N), dry (C, N) -> float32 (C, N): ``gain * (mix*wet + (1-mix)*dry)``."""
    gain = float(10.0 ** (gain_db / 20.0))
    return ((mix * wet + (1.0 - mix) * dry) * gain).astype(np.float32)


class LatencyCompensator:
    """A stream with ``latency`` samples of delay, run so that output lines up with input.

    push(x (C, n)) -> the output samples that are ready (the first ``latency`` samples the stream
    produces are dropped); flush() feeds ``latency`` samples of silence and returns the rest, so
    the total output length equals the total input length.
    """

    def __init__(self, process: Callable[[np.ndarray], np.ndarray], latency: int, block: int) -> None:
        self.process, self.latency, self.block = process, int(latency), max(1, int(block))
        self.to_drop = self.latency

    def push(self, x: np.ndarray) -> np.ndarray:
        return run_blocks(lambda b: self._drop(self.process(b)), x, self.block)

    def flush(self, channels: int) -> np.ndarray:
        zeros = np.zeros((channels, min(self.block, max(1, self.latency))), np.float32)
        outs = []
        for s in range(0, self.latency, zeros.shape[1]):
            outs.append(self._drop(self.process(zeros[:, :min(zeros.shape[1], self.latency - s)])))
        return np.concatenate(outs, axis=1) if outs else np.zeros((channels, 0), np.float32)

    def _drop(self, y: np.ndarray) -> np.ndarray:
        if self.to_drop <= 0:
            return y
        d = min(self.to_drop, y.shape[1])
        self.to_drop -= d
        return y[:, d:]


def run_blocks(process: Callable[[np.ndarray], np.ndarray], x: np.ndarray, block: int) -> np.ndarray:
    """x (C, n) through ``process`` in blocks of at most ``block`` samples -> the outputs joined
    along time (float32, (C, m); m = n for a block processor that keeps lengths)."""
    n, block = x.shape[1], max(1, int(block))
    if n <= block:
        return process(x)
    return np.concatenate([process(x[:, s:s + block]) for s in range(0, n, block)], axis=1)


def run_compensated(process: Callable[[np.ndarray], np.ndarray], latency: int, x: np.ndarray,
                    block: int) -> np.ndarray:
    """x (C, n) through a stream of ``latency`` samples of delay, in blocks of at most ``block``
    -> float32 (C, n) time-aligned with x (see :class:`LatencyCompensator`)."""
    comp = LatencyCompensator(process, latency, block)
    parts: Iterable[np.ndarray] = (comp.push(x), comp.flush(x.shape[0]))
    out = np.concatenate(list(parts), axis=1)
    return out[:, :x.shape[1]].astype(np.float32, copy=False)
