"""Offline conversion for windowed (non-causal) models such as imported so-vits-svc voices.

so-vits-svc's ``slice_inference`` semantics (spec §3.11), with two deliberate improvements:
each slice is inferred with ``pad_seconds`` of *real* neighbouring audio as context (zeros only
beyond the file's ends), and slices longer than ``max_slice_seconds`` (or ``clip_seconds`` when
given) are cut at energy minima and joined with linear crossfades of ``crossfade_seconds``.
F0 is tracked once over the whole file (so slicing never changes it), interpolated over
unvoiced frames, and every slice is synthesised with so-vits's fixed seed (52468).

Silence (below ``slice_db``) gives zeros, as in so-vits. Loudness: ``lea`` is so-vits's
``-lea`` (1 = model's own envelope, 0 = input's 0.5 s RMS envelope), applied per slice window;
the engine's ``loudness_match`` and ``gate_db`` are applied afterwards (:func:`windowed_wet`, lea = 1 there).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from svc_dsp.audio.polyphase import ZeroPhaseResampler
from svc_dsp.audio.slicing import silence_slices, split_long
from svc_dsp.engine.dynamics import DcBlocker
from svc_dsp.engine.processor import frame_dynamics
from svc_dsp.errors import ParameterError
from svc_dsp.features.f0 import get_f0_tracker
from svc_dsp.features.pitch import interpolate_unvoiced
from svc_dsp.features.pitch import transpose as transpose_f0
from svc_dsp.models.base import WindowedModel

SLICE_DB, PAD_SECONDS, MAX_SLICE_SECONDS, CROSSFADE_SECONDS = -40.0, 0.5, 30.0, 0.1


def change_rms(src: np.ndarray, sr: int, out: np.ndarray, rate: float) -> np.ndarray:
    """so-vits ``change_rms``: out * rms_in^(1-rate) * rms_out^(rate-1); RMS over 1 s frames every
    0.5 s (librosa centred, zero padded), linearly interpolated to len(out). rate 1 = unchanged."""
    import torch
    import torch.nn.functional as F

    if rate >= 1.0 or out.size == 0:
        return out

    def rms(x: np.ndarray) -> np.ndarray:
        hop = sr // 2
        frame = 2 * hop
        xp = np.pad(np.asarray(x, np.float64), (frame // 2, frame // 2))
        n = 1 + (xp.size - frame) // hop if xp.size >= frame else 1
        cs = np.concatenate([[0.0], np.cumsum(xp ** 2)])
        starts = np.arange(n) * hop
        ends = np.minimum(starts + frame, xp.size)
        return np.sqrt((cs[ends] - cs[starts]) / frame)

    def stretch(r: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(r.astype(np.float32))[None, None]
        return F.interpolate(t, size=out.size, mode="linear")[0, 0].numpy()

    r_in = stretch(rms(src))
    r_out = np.maximum(stretch(rms(out)), 1e-6)
    with np.errstate(divide="ignore"):
        g = np.power(r_in, 1.0 - rate) * np.power(r_out, rate - 1.0)
    return (out * g).astype(np.float32)


def _pieces(mono: np.ndarray, sr: int, slice_db: float, max_len_s: float) -> list[tuple[int, int, bool, bool]]:
    """(start, end, fade_in, fade_out): voiced pieces; fades mark cuts inside a voiced run."""
    out: list[tuple[int, int, bool, bool]] = []
    for a, b in silence_slices(mono, sr, threshold_db=slice_db, min_length_s=5.0, min_interval_s=0.3,
                               hop_s=0.02, max_sil_kept_s=5.0):
        parts = split_long(mono, sr, [(a, b)], max_length_s=max_len_s, min_length_s=min(5.0, max_len_s / 2))
        for k, (pa, pb) in enumerate(parts):
            out.append((pa, pb, k > 0, k < len(parts) - 1))
    return out


def _frames(x: np.ndarray, first: int, count: int) -> np.ndarray:
    """Columns first..first+count-1 of (..., n) with edge values held outside the range."""
    n = x.shape[-1]
    idx = np.clip(np.arange(first, first + count), 0, max(n - 1, 0))
    return x[..., idx]


def convert_windowed(model: WindowedModel, mono: np.ndarray, f0_method: str = "harvest", **kw: Any) -> np.ndarray:
    """mono float32 (N,) at ``model.sample_rate`` -> converted (N,) float32; see :func:`windowed_wave`
    (keywords: f0, transpose, speaker_weights, slice_db, pad_seconds, clip_seconds, crossfade_seconds,
    noise_scale, seed, lea, cluster_ratio, index_ratio)."""
    return windowed_wave(model, mono, f0_method, **kw)


def windowed_wet(model: WindowedModel, mono: np.ndarray, sample_rate: int, params: Mapping[str, Any],
                 track_f0: Callable[[np.ndarray, str, int], np.ndarray]) -> np.ndarray:
    """The wet voice of an offline render, what :class:`Converter` uses: mono (N,) at ``sample_rate``
    -> (N,) float32 at ``sample_rate``. Resampling, DC blocking, F0 by ``track_f0(audio at model rate,
    method, n_frames)``, transpose, speaker/speaker_mix, the model over slices, then loudness_match and
    gate on the frame grid (:func:`svc_dsp.engine.processor.frame_dynamics`, as in streaming)."""
    p = params
    sr_m, hop = model.sample_rate, model.hop_size
    xm = DcBlocker(sr_m)(ZeroPhaseResampler(sample_rate, sr_m).resample(np.asarray(mono, np.float32)))
    f0 = transpose_f0(track_f0(xm, p["f0_method"], -(-xm.shape[0] // hop)), p["transpose"]).astype(np.float32)
    spk = model.speaker_weights(p["speaker"], p["speaker_mix"])
    wet = windowed_wave(model, xm, p["f0_method"], f0=f0, speaker_weights=spk,
                        cluster_ratio=p.get("cluster_ratio", 0.0), index_ratio=p.get("index_ratio", 0.0))
    wet = frame_dynamics(xm, wet, hop, sr_m, p["loudness_match"], p["gate_db"])
    return ZeroPhaseResampler(sr_m, sample_rate).resample(wet, n_out=mono.shape[0])


def windowed_wave(model: WindowedModel, mono: np.ndarray, f0_method: str = "harvest", *, f0: np.ndarray | None = None,
                     transpose: float = 0.0, speaker_weights: np.ndarray | None = None,
                     slice_db: float = SLICE_DB, pad_seconds: float = PAD_SECONDS, clip_seconds: float = 0.0,
                     crossfade_seconds: float = CROSSFADE_SECONDS, noise_scale: float = 0.4, seed: int = 52468,
                     lea: float = 1.0, cluster_ratio: float = 0.0, index_ratio: float = 0.0) -> np.ndarray:
    """mono float32 (N,) at ``model.sample_rate`` -> converted (N,) float32.

    f0: (ceil(N/hop),) Hz on our frame grid, 0 = unvoiced (tracked with ``f0_method`` if None;
    ``transpose`` semitones are applied only then). speaker_weights: (S,) or (S, ceil(N/hop))
    for a dynamic speaker mix (default: the model's first speaker). cluster_ratio: so-vits k-means
    mixing, 0..1 (see the parameter table).
    """
    sr, hop = model.sample_rate, model.hop_size
    x = np.asarray(mono, dtype=np.float32)
    n = x.shape[0]
    n_frames = -(-n // hop)
    if not 0.0 <= lea <= 1.0:
        raise ParameterError(f"lea (loudness envelope adjustment) = {lea}; allowed 0..1 (1 = off)")
    if f0 is None:
        lo, hi = model.f0_range
        f0 = get_f0_tracker(f0_method).track(x, sr, hop, n_frames, lo, hi)
        f0 = transpose_f0(f0, transpose)
    f0 = np.asarray(f0, dtype=np.float32)
    if f0.shape != (n_frames,):
        raise ParameterError(f"f0 has shape {f0.shape}; expected ({n_frames},) for {n} samples at hop {hop}")
    f0_filled, voiced = interpolate_unvoiced(f0)
    uv = voiced.astype(np.float32)
    spk = model.speaker_weights() if speaker_weights is None else np.asarray(speaker_weights, dtype=np.float32)
    out = np.zeros(n, dtype=np.float32)
    if n == 0:
        return out
    max_len = clip_seconds if clip_seconds > 0 else MAX_SLICE_SECONDS
    pad = int(round(pad_seconds * sr))
    xf = int(round(crossfade_seconds * sr / 2))
    for a, b, fade_in, fade_out in _pieces(x, sr, slice_db, max_len):
        ka = a - (xf if fade_in else 0)
        kb = b + (xf if fade_out else 0)
        s = (ka - pad) // hop * hop  # window start on the frame grid (may be < 0: zeros there)
        e = -(-(kb + pad) // hop) * hop
        win = np.zeros(e - s, dtype=np.float32)
        lo_, hi_ = max(s, 0), min(e, n)
        win[lo_ - s:hi_ - s] = x[lo_:hi_]
        fw = _frames(f0_filled, s // hop, (e - s) // hop)
        uw = _frames(uv, s // hop, (e - s) // hop)
        first = s // hop
        if first < 0 or first + (e - s) // hop > n_frames:  # outside the file: unvoiced
            idx = np.arange(first, first + (e - s) // hop)
            uw = np.where((idx >= 0) & (idx < n_frames), uw, 0.0).astype(np.float32)
        sw = _frames(spk, first, (e - s) // hop) if spk.ndim == 2 else spk
        y = model.convert_window(win, fw, sw, uv=uw, noise_scale=noise_scale, seed=seed, cluster_ratio=cluster_ratio,
                                 index_ratio=index_ratio)
        if lea < 1.0:
            y = change_rms(win, sr, y, lea)
        ka_c, kb_c = max(ka, 0), min(kb, n)
        seg = y[ka_c - s:kb_c - s].copy()
        if fade_in and xf > 0:
            seg[:2 * xf] *= np.linspace(0.0, 1.0, 2 * xf, dtype=np.float32)[: seg.shape[0]]
        if fade_out and xf > 0:
            m = min(2 * xf, seg.shape[0])
            seg[-m:] *= np.linspace(1.0, 0.0, 2 * xf, dtype=np.float32)[-m:]
        out[ka_c:kb_c] += seg
    return out


