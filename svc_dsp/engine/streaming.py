"""StreamingConverter: blocks in, blocks out, constant latency.

host block (any size 1..max_block_size, mono or multichannel, any rate)
  -> mono -> zero-phase stream resampler -> model stage (either regime, then loudness and gate,
  see engine.processor.ModelStage) -> stream resampler back -> wet FIFO primed with
  ``latency_samples`` zeros
  -> dry/wet with the dry signal delayed by the same latency -> output gain.

Every stage computes the same numbers as the offline :class:`Converter`; the FIFO only
decides when they come out. ``latency_samples`` is derived from the stages (resampler
half-widths, the model's lookahead in hops, hop accumulation), never from parameters,
bypass or block size. Parameter setters only store a target (no lock); the engine
smooths it (frame-rate parameters per frame and interpolated per sample, mix/gain/bypass
per sample).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.audio.io import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from svc_dsp.audio.polyphase import ZeroPhaseResampler
from svc_dsp.engine.parameters import PARAMETERS
from svc_dsp.engine.processor import ModelStage, ParameterStore
from svc_dsp.engine.windowed import WindowSettings
from svc_dsp.errors import AudioError, ParameterError, UnsupportedAudioError
from svc_dsp.models.base import VoiceModel
from svc_dsp.models.catalog import load_model
from svc_dsp.runtime.onnx_hpn import OnnxHpnModel

RAMP_S = 0.020  # mix / gain / bypass move to a new target over this time


def _ensure_model(model: VoiceModel | str | Path) -> VoiceModel:
    if isinstance(model, VoiceModel):
        return model
    return load_model(model)


def _numpy_backend(model: VoiceModel) -> VoiceModel:
    if model.family != "hpn" or model.regime != "stateful":
        raise ParameterError(f"model family '{model.family}' has no numpy backend; use backend='torch'")
    from svc_dsp.runtime.numpy_hpn import NumpyHpnModel

    return NumpyHpnModel.from_model(model)


def _onnx_backend(model: VoiceModel, hops: int = 1) -> VoiceModel:
    if model.family == "hpn":
        return OnnxHpnModel.from_model(model, hops=hops)
    to_onnx = getattr(model, "onnx_backend", None)
    if to_onnx is None:
        raise ParameterError(f"model family '{model.family}' has no ONNX backend; use backend='torch'")
    return to_onnx()


def resolve_backend(model: VoiceModel, backend: str = "auto") -> str:
    """The runtime a ``backend`` request means for ``model``: "torch", "onnx" or "numpy" as given;
    "auto" = for the stateful hpn family "onnx" when onnxruntime is installed (the fastest per
    block on one CPU thread: ``python -m benchmarks stream``), else "numpy" (several times faster
    than torch at one hop per step); "torch" for other families and for voices with a feature
    index (retrieval runs in the torch graph)."""
    if backend in ("torch", "onnx", "numpy"):
        return backend
    if backend != "auto":
        raise ParameterError(f"backend {backend!r}; allowed: 'auto', 'torch', 'onnx', 'numpy'")
    import importlib.util

    if getattr(model, "feature_index", None) is not None:
        return "torch"  # feature retrieval (index_ratio) runs in the torch graph only
    if model.family == "hpn" and model.regime == "stateful":
        return "onnx" if importlib.util.find_spec("onnxruntime") else "numpy"
    return "torch"


class _Ramp:
    """Per-sample linear approach to a target at a fixed maximum rate."""

    def __init__(self, value: float, per_sample: float) -> None:
        self.value, self.step = float(value), per_sample

    def render(self, target: float, n: int, out: np.ndarray) -> np.ndarray:
        v = self.value
        if v == target:
            out[:n] = v
            return out[:n]
        dist = target - v
        steps = min(n, int(math.ceil(abs(dist) / self.step)))
        ramp = v + np.sign(dist) * self.step * np.arange(1, steps + 1)
        ramp = np.minimum(ramp, target) if dist > 0 else np.maximum(ramp, target)
        out[:steps] = ramp
        out[steps:n] = target
        self.value = float(out[n - 1]) if n else v
        return out[:n]


class StreamingConverter:
    """Real-time conversion of a stream of blocks.

    model: a VoiceModel (stateful regime) or a folder/catalog name.
    sample_rate: host rate (8 kHz..192 kHz). max_block_size: largest block ``process`` takes.
    process(block: float (n,) or (C, n)) -> float32 of the same shape, the converted signal
    delayed by exactly ``latency_samples``.
    f0_track: offline use only — a precomputed F0 per model frame (for offline trackers).
    hops_per_step: model hops computed per engine step (stateful models). 1 gives the lowest
    latency; 2 adds one hop (5 ms for the demo voice) and halves the per-step overhead.
    store: read (and freeze ``f0_method`` in) an existing :class:`ParameterStore` instead of
    keeping its own (:class:`svc_dsp.engine.voice_processor.VoiceProcessor` shares its store).
    """

    def __init__(self, model: VoiceModel | str | Path, sample_rate: int, max_block_size: int = 8192, *,
                 backend: str = "auto", f0_track: np.ndarray | None = None,
                 window: WindowSettings | None = None, hops_per_step: int = 1,
                 store: ParameterStore | None = None, **params: Any) -> None:
        self.model = _ensure_model(model)
        try:  # denormals cost hundreds of cycles each in long release tails; flush them to zero
            import torch

            torch.set_flush_denormal(True)
        except ImportError:
            pass
        if self.model.regime not in ("stateful", "windowed"):
            raise ParameterError(f"model '{self.model.name}': unknown regime {self.model.regime!r}")
        if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
            raise UnsupportedAudioError(
                f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
        backend = resolve_backend(self.model, backend)
        self.hops_per_step = max(1, int(hops_per_step))
        if backend == "onnx":
            self.model = _onnx_backend(self.model, self.hops_per_step)
        elif backend == "numpy":
            self.model = _numpy_backend(self.model)
        self.backend = backend
        self.sample_rate, self.max_block_size = int(sample_rate), int(max_block_size)
        if store is None:
            store = ParameterStore(self.model, params)
        elif params:
            store.update(params)
        self.store = store
        sr_m = self.model.sample_rate
        self.r_in = ZeroPhaseResampler(self.sample_rate, sr_m)
        self.r_out = ZeroPhaseResampler(sr_m, self.sample_rate)
        self.stage = ModelStage(self.model, self.store.get("f0_method"), self.store.targets, f0_track=f0_track,
                                window=window, hops_per_step=self.hops_per_step)
        self.store.freeze("f0_method", "f0_method cannot change while streaming; create a new StreamingConverter")
        self.latency_samples = self._derive_latency()
        per = 1.0 / (RAMP_S * self.sample_rate)
        self._buf = np.zeros(max(1, self.max_block_size), np.float64)
        self._buf2 = np.zeros(max(1, self.max_block_size), np.float64)
        self._buf3 = np.zeros(max(1, self.max_block_size), np.float64)
        self._buf4 = np.zeros(max(1, self.max_block_size), np.float64)
        self._ramp_idx = np.arange(max(1, self.max_block_size))  # sample indices of a block
        self._ramp_per = per
        self._channels = 0
        self.xruns = 0
        self.reset()

    # -- latency ------------------------------------------------------------------
    def _derive_latency(self) -> int:
        """max over host output n of (last host input index it needs) - n."""
        n = np.arange(0, 2 * self.sample_rate, dtype=np.int64)  # covers every phase pattern
        s = self.r_out.last_input_needed(n)  # last model-output sample host output n needs
        m_in = self.stage.input_needed(s)  # last model-input sample that output sample needs
        need = self.r_in.last_input_needed(m_in)
        return int(max(0, (need - n).max()))

    # -- parameters -----------------------------------------------------------------
    def set(self, name: str, value: Any) -> None:
        """Set a parameter target (validated; applied smoothly by the audio thread, no lock)."""
        self.store.set(name, value)

    def get(self, name: str) -> Any:
        return self.store.get(name)

    def __getattr__(self, name: str) -> Any:
        if name in PARAMETERS and "store" in self.__dict__:
            return self.__dict__["store"].get(name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in PARAMETERS:
            self.set(name, value)
        else:
            object.__setattr__(self, name, value)

    # -- stream ---------------------------------------------------------------------
    def reset(self) -> None:
        """Clear all state; the next block starts a new stream (same latency)."""
        self.r_in.reset()
        self.r_out.reset()
        self.stage.reset()  # built once in __init__ (its geometry fixes the latency); f0_method cannot change
        L = self.latency_samples
        cap = L + self.max_block_size + 4 * self.sample_rate // 10 + 8192
        self._wet = np.zeros(cap, np.float32)
        self._wet_r, self._wet_w = 0, L  # read / write positions (ring); L zeros primed
        self._dry: np.ndarray | None = None
        t = self.store.targets()
        self._mix = _Ramp(t["mix"], self._ramp_per)
        self._gain = _Ramp(10 ** (t["output_gain_db"] / 20), self._ramp_per * 4)
        self._byp = _Ramp(1.0 if t["bypass"] else 0.0, self._ramp_per)

    def _push_wet(self, y: np.ndarray) -> None:
        cap = self._wet.shape[0]
        n = y.shape[0]
        if self._wet_w - self._wet_r + n > cap:
            raise AudioError("internal wet buffer overflow: block larger than max_block_size?")
        i = self._wet_w % cap
        first = min(n, cap - i)
        self._wet[i:i + first] = y[:first]
        self._wet[: n - first] = y[first:]
        self._wet_w += n

    def _pop_wet(self, n: int, out: np.ndarray) -> None:
        cap = self._wet.shape[0]
        avail = self._wet_w - self._wet_r
        take = min(n, avail)
        i = self._wet_r % cap
        first = min(take, cap - i)
        out[:first] = self._wet[i:i + first]
        out[first:take] = self._wet[: take - first]
        if take < n:  # never expected: latency is derived so that the FIFO cannot run dry
            out[take:n] = 0.0
            self.xruns += 1
        self._wet_r += take

    def _delay_dry(self, x: np.ndarray) -> np.ndarray:
        C, n = x.shape
        L = self.latency_samples
        if self._dry is None or self._dry.shape[0] != C:
            self._dry = np.zeros((C, L + self.max_block_size), np.float32)
        if L == 0:
            return x
        d = self._dry  # d[:, :L] holds the last L input samples, oldest first
        d[:, L:L + n] = x
        out = d[:, :n].copy()
        d[:, :L] = d[:, n:n + L]  # numpy copies overlapping ranges correctly
        return out

    def process(self, block: np.ndarray) -> np.ndarray:
        """block: float (n,) or (C, n), n <= max_block_size -> float32, same shape."""
        a = np.asarray(block)
        mono_in = a.ndim == 1
        x = a[None, :] if mono_in else a
        if x.ndim != 2 or a.dtype.kind != "f":
            raise AudioError(f"block must be float (n,) or (channels, n); received {a.dtype} {a.shape}")
        n = x.shape[1]
        if n > self.max_block_size:
            raise AudioError(f"block of {n} samples exceeds max_block_size {self.max_block_size}; "
                             f"create the converter with a larger max_block_size")
        if n == 0:
            return np.zeros_like(a, dtype=np.float32)
        x = x.astype(np.float32, copy=False)
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        mono = x.mean(axis=0) if x.shape[0] > 1 else x[0]
        xm = self.r_in.process(mono)
        if xm.shape[0]:
            wm = self.stage.push(xm)
            if wm.shape[0]:
                self._push_wet(self.r_out.process(wm))
        wet = self._buf[:n]
        self._pop_wet(n, wet)
        dry = self._delay_dry(x)
        t = self.store.targets()
        t_mix, t_byp = float(t["mix"]), 1.0 if t["bypass"] else 0.0
        t_gain = 10 ** (float(t["output_gain_db"]) / 20)
        if t_byp == 0.0 == self._byp.value and self._mix.value == t_mix and self._gain.value == t_gain:
            # every ramp settled, bypass off: the per-sample ramps are constants and bypass adds
            # exactly nothing; the same numbers as below with scalars (float64, as the ramps)
            m = np.float64(t_mix)
            out = (np.float64(t_gain) * (m * wet + (1.0 - m) * dry)).astype(np.float32)
            return out[0] if mono_in else out
        mix = self._mix.render(t_mix, n, self._buf2)
        byp = self._byp.render(t_byp, n, self._buf3)
        gain = self._gain.render(t_gain, n, self._buf4)
        processed = gain * (mix * wet + (1.0 - mix) * dry)
        out = ((1.0 - byp) * processed + byp * dry).astype(np.float32)
        return out[0] if mono_in else out
