"""Offline conversion of whole arrays: :class:`Converter`.

audio (any rate, any channel count) -> mono analysis at the model rate -> F0 (+transpose),
speaker weights -> voice model -> loudness matching and gate on the frame grid ->
back to the input rate -> dry/wet per channel -> output gain.

Channels: the voice is converted once from the average of all channels and the
converted voice is written to every channel (centred); the dry part of ``mix`` keeps
each channel's own signal.
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.audio.io import sanitize
from svc_dsp.audio.resample import resample
from svc_dsp.engine.dynamics import DcBlocker, Gate, LoudnessMatcher, apply_frame_gains, hop_mean_square
from svc_dsp.engine.parameters import PARAMETERS, defaults, parameter
from svc_dsp.errors import AudioError, UnsupportedAudioError
from svc_dsp.models.base import VoiceModel

MIN_RATE, MAX_RATE = 8000, 192000
#: offline F0 trackers run on slices of at most this many seconds (memory stays bounded)
F0_SLICE_SECONDS = 30.0
F0_CONTEXT_SECONDS = 1.0


def _as_channels_first(audio: np.ndarray) -> tuple[np.ndarray, bool]:
    a = np.asarray(audio)
    if a.dtype.kind not in "f":
        raise AudioError(f"audio must be floating point (float32/float64), received dtype {a.dtype}; "
                         f"convert integer PCM with audio.astype(np.float32) / 32768")
    if a.ndim == 1:
        return a[None, :], True
    if a.ndim != 2:
        raise AudioError(f"audio must have shape (N,) or (channels, N); received shape {a.shape}")
    return a, False


class Converter:
    """Offline voice conversion with one model.

    >>> conv = Converter(load_model("demo"), transpose=2.0)
    >>> out = conv.convert(audio, 44100)   # audio: (N,) or (C, N) float; out: same shape, float32

    Parameters are attributes named as in :data:`svc_dsp.engine.parameters.PARAMETERS`;
    setting one validates it (``ParameterError`` names the allowed range).
    ``last_warnings`` lists what the previous call had to repair (NaN, inf ...).
    """

    def __init__(self, model: VoiceModel | str | Path, **params: Any) -> None:
        if not isinstance(model, VoiceModel):
            from svc_dsp.models.catalog import load_model
            model = load_model(model)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "_params", defaults())
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "last_warnings", [])
        for k, v in params.items():
            setattr(self, k, v)

    # -- parameters -------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in PARAMETERS or name in ("t", "s", "f0p"):
            self.set(name, value)
        else:
            object.__setattr__(self, name, value)

    def set(self, name: str, value: Any) -> None:
        """Validate and set one parameter (so-vits aliases accepted)."""
        p = parameter(name)
        v = p.validate(value)
        if p.name == "speaker" and v is not None:
            self.model.speaker_weights(v)  # raises UnknownSpeakerError naming the speakers
        if p.name == "speaker_mix" and v is not None:
            self.model.speaker_weights(None, v)
        self._params[p.name] = v

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    # -- conversion -------------------------------------------------------------
    def convert(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """audio: float (N,) or (C, N) at ``sample_rate`` Hz -> float32 of the same shape.

        Output is time-aligned with the input (no latency offline).
        """
        x, was_mono = _as_channels_first(audio)
        if not (MIN_RATE <= int(sample_rate) <= MAX_RATE):
            raise UnsupportedAudioError(f"sample rate {sample_rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz; "
                                        f"resample the input first")
        sample_rate = int(sample_rate)
        x, warns = sanitize(x.astype(np.float32, copy=False))
        self.last_warnings = list(warns)
        for w in warns:
            warnings.warn(w, stacklevel=2)
        n = x.shape[1]
        p = self.params
        if n == 0 or p["bypass"]:
            out = x.astype(np.float32, copy=True)
            return out[0] if was_mono else out
        wet = self.convert_mono(x.mean(axis=0), sample_rate)
        gain = float(10.0 ** (p["output_gain_db"] / 20.0))
        out = (p["mix"] * wet[None, :] + (1.0 - p["mix"]) * x) * gain
        out = out.astype(np.float32)
        return out[0] if was_mono else out

    def convert_mono(self, mono: np.ndarray, sample_rate: int) -> np.ndarray:
        """The wet voice only: mono (N,) at ``sample_rate`` -> (N,) float32 at ``sample_rate``."""
        m = self.model
        sr_m, hop = m.sample_rate, m.hop_size
        p = self.params
        xm = DcBlocker(sr_m)(resample(mono.astype(np.float32), sample_rate, sr_m))
        n_m = xm.shape[0]
        n_frames = -(-n_m // hop)
        f0 = self.track_f0(xm, p["f0_method"], n_frames)
        f0 = np.where(f0 > 0, f0 * 2.0 ** (p["transpose"] / 12.0), 0.0).astype(np.float32)
        spk = m.speaker_weights(p["speaker"], p["speaker_mix"])
        wet = m.synthesize(xm, f0, spk)
        wet = self._dynamics(xm, wet, p)
        back = resample(wet, sr_m, sample_rate)
        out = np.zeros(mono.shape[0], dtype=np.float32)
        n = min(out.shape[0], back.shape[0])  # rounding of two rate changes may lose a sample
        out[:n] = back[:n]
        return out

    def track_f0(self, xm: np.ndarray, method: str, n_frames: int) -> np.ndarray:
        """F0 per frame at the model rate; offline trackers run on slices cut at energy minima,
        each with real-audio context on both sides."""
        from svc_dsp.audio.slicing import energy_minimum_cuts
        from svc_dsp.features.f0 import get_f0_tracker

        m = self.model
        sr, hop = m.sample_rate, m.hop_size
        lo, hi = m.f0_range
        tracker = get_f0_tracker(method)
        n = xm.shape[0]
        if tracker.streaming or n <= F0_SLICE_SECONDS * sr:
            return tracker.track(xm, sr, hop, n_frames, lo, hi)
        cuts = energy_minimum_cuts(xm, sr, target_len=int(F0_SLICE_SECONDS * sr), search_len=int(2 * sr))
        frame_cuts = sorted({0, n_frames, *[min(n_frames, max(0, c // hop)) for c in cuts]})
        ctx = int(F0_CONTEXT_SECONDS * sr) // hop
        f0 = np.zeros(n_frames, dtype=np.float32)
        for a, b in zip(frame_cuts[:-1], frame_cuts[1:]):
            fa = max(0, a - ctx)
            fb = min(n_frames, b + ctx)
            seg = xm[fa * hop: fb * hop]
            part = tracker.track(seg, sr, hop, fb - fa, lo, hi)
            f0[a:b] = part[a - fa: b - fa]
        return f0

    def _dynamics(self, xm: np.ndarray, wet: np.ndarray, p: dict[str, Any]) -> np.ndarray:
        """Loudness matching and gate on the model's frame grid (same code as streaming)."""
        hop = self.model.hop_size
        hop_s = hop / self.model.sample_rate
        n = xm.shape[0]
        k = -(-n // hop)
        xi = np.zeros(k * hop, np.float32)
        xi[:n] = xm
        xo = np.zeros(k * hop, np.float32)
        xo[:n] = wet
        ms_in, ms_out = hop_mean_square(xi, hop), hop_mean_square(xo, hop)
        g_db = LoudnessMatcher(hop_s).gains_db(ms_in, ms_out, p["loudness_match"])
        g = 10.0 ** (g_db / 20.0) * Gate(hop_s).gains(ms_in, p["gate_db"])
        y, _ = apply_frame_gains(xo, g, 0.0, hop)
        return y[:n]
