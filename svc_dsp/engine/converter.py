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

from svc_dsp.audio.io import MAX_SAMPLE_RATE as MAX_RATE
from svc_dsp.audio.io import MIN_SAMPLE_RATE as MIN_RATE
from svc_dsp.audio.io import sanitize
from svc_dsp.audio.polyphase import ZeroPhaseResampler
from svc_dsp.audio.slicing import energy_minimum_cuts
from svc_dsp.engine.dynamics import DcBlocker
from svc_dsp.engine.parameters import PARAMETERS
from svc_dsp.engine.processor import ParameterStore, mix_and_gain, run_compensated
from svc_dsp.engine.streaming import StreamingConverter
from svc_dsp.engine.windowed_offline import windowed_wet
from svc_dsp.errors import AudioError, UnsupportedAudioError
from svc_dsp.features.f0 import get_f0_tracker
from svc_dsp.models.base import StatefulModel, VoiceModel
from svc_dsp.models.catalog import load_model

OFFLINE_BLOCK = 1 << 16  # samples per engine call when rendering offline
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
    ``store``: read the values of an existing :class:`ParameterStore` (an effect's) instead of
    keeping its own.
    """

    def __init__(self, model: VoiceModel | str | Path, *, store: ParameterStore | None = None, **params: Any) -> None:
        if not isinstance(model, VoiceModel):
            model = load_model(model)
        if store is None:
            store = ParameterStore(model, params)
        elif params:
            store.update(params)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "last_warnings", [])
        object.__setattr__(self, "store", store)

    # -- parameters -------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        store = self.__dict__.get("store")
        if store is not None and name in PARAMETERS:
            return store.get(name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in PARAMETERS or name in ("t", "s", "f0p"):
            self.set(name, value)
        else:
            object.__setattr__(self, name, value)

    def set(self, name: str, value: Any) -> None:
        """Validate and set one parameter (so-vits aliases accepted)."""
        self.store.set(name, value)

    @property
    def params(self) -> dict[str, Any]:
        return self.store.values

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
        if self.model.regime == "stateful":
            out = self._convert_stateful(x, sample_rate, p)
        else:
            wet = self.convert_mono(x.mean(axis=0), sample_rate)
            out = mix_and_gain(wet[None, :], x, p["mix"], p["output_gain_db"])
        return out[0] if was_mono else out

    def _convert_stateful(self, x: np.ndarray, sample_rate: int, p: dict[str, Any]) -> np.ndarray:
        """Run the streaming engine over the whole signal in large blocks and drop its latency:
        offline and streaming share every stage, and memory stays bounded."""
        m = self.model
        f0_track = None
        tracker = get_f0_tracker(p["f0_method"])
        # offline trackers, and streaming ones that look further ahead than the voice allows live
        # (e.g. crepe-tiny-live on a 10 ms voice), are run over the whole signal first
        delay_hops = m.delay_hops if isinstance(m, StatefulModel) else 0
        if not tracker.streaming or tracker.lookahead_samples(m.sample_rate) > delay_hops * m.hop_size:
            mono = x.mean(axis=0) if x.shape[0] > 1 else x[0]
            xm = DcBlocker(m.sample_rate)(ZeroPhaseResampler(sample_rate, m.sample_rate).resample(mono))
            f0_track = self.track_f0(xm, p["f0_method"], -(-xm.shape[0] // m.hop_size))
        sc = StreamingConverter(m, sample_rate, OFFLINE_BLOCK, backend="torch", f0_track=f0_track, **p)
        return run_compensated(sc.process, sc.latency_samples, x, OFFLINE_BLOCK)

    def convert_mono(self, mono: np.ndarray, sample_rate: int) -> np.ndarray:
        """The wet voice only: mono (N,) at ``sample_rate`` -> (N,) float32 at ``sample_rate``."""
        if self.model.regime == "stateful":
            p = {**self.params, "mix": 1.0, "output_gain_db": 0.0, "bypass": False}
            return self._convert_stateful(mono[None, :].astype(np.float32), sample_rate, p)[0]
        return windowed_wet(self.model, mono, sample_rate, self.params, self.track_f0)

    def track_f0(self, xm: np.ndarray, method: str, n_frames: int) -> np.ndarray:
        """F0 per frame at the model rate; offline trackers run on slices cut at energy minima,
        each with real-audio context on both sides."""
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
