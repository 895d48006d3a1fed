"""Pitch-contour utilities on F0 arrays (Hz, 0.0 where unvoiced, one value per frame).

Float inputs keep their dtype (float32 stays float32); other inputs become float64.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from svc_dsp.errors import ParameterError

__all__ = ["cents_error", "gross_pitch_error", "hz_to_midi", "interpolate_unvoiced", "midi_to_hz",
           "octave_guard", "transpose"]


def _contour(f0: Any, what: str = "f0") -> np.ndarray:
    x = np.asarray(f0)
    if x.ndim != 1:
        raise ParameterError(f"{what} must be a 1-D array of Hz per frame; received shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    return x


def _voiced(f0: np.ndarray) -> np.ndarray:
    return np.isfinite(f0) & (f0 > 0)


def transpose(f0: Any, semitones: Any) -> np.ndarray:
    """``f0 * 2 ** (semitones / 12)`` on voiced frames; unvoiced frames (<= 0 or NaN) stay 0.0.

    semitones: a number, or one value per frame (automation).
    """
    x = _contour(f0)
    st = np.asarray(semitones, dtype=np.float64)
    if not np.isfinite(st).all():
        raise ParameterError(f"transpose needs finite semitones; received {semitones!r}")
    if st.ndim not in (0, 1) or (st.ndim == 1 and st.shape != x.shape):
        raise ParameterError(
            f"semitones must be a number or one value per frame ({x.shape[0]}); received shape {st.shape}")
    out = (x * np.exp2(st / 12.0)).astype(x.dtype, copy=False)
    return np.where(_voiced(x), out, 0).astype(x.dtype, copy=False)


def interpolate_unvoiced(f0: Any) -> tuple[np.ndarray, np.ndarray]:
    """Fill unvoiced frames for models that need a continuous F0.

    Returns ``(f0_filled, uv_mask)``: f0_filled is linear in Hz between voiced neighbours and holds
    the first/last voiced value at the edges (all zeros if nothing is voiced); uv_mask is bool,
    **True where the frame was voiced** (the so-vits-svc ``uv`` convention: 1 = voiced).
    """
    x = _contour(f0)
    mask = _voiced(x)
    if not mask.any():
        return np.zeros_like(x), mask
    idx = np.flatnonzero(mask)
    filled = np.interp(np.arange(x.shape[0]), idx, x[idx].astype(np.float64)).astype(x.dtype, copy=False)
    return filled, mask


def octave_guard(f0: Any, window: int = 31, tolerance_cents: float = 200.0, min_voiced: int = 3) -> np.ndarray:
    """Offline octave-error repair (e.g. after harvest/dio).

    A voiced frame that sits an octave (+- tolerance_cents) above or below the median of the voiced
    frames in a centred ``window`` of frames is moved back by that octave. Octave leaps that last
    longer than about half the window shift the median and are kept.
    """
    x = _contour(f0)
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 3:
        raise ParameterError(f"octave_guard window must be an integer >= 3 frames; received {window!r}")
    if not 0.0 < float(tolerance_cents) < 600.0:
        raise ParameterError(f"tolerance_cents must be in (0, 600); received {tolerance_cents!r}")
    mask = _voiced(x)
    if mask.sum() < min_voiced:
        return x.copy()
    half = int(window) // 2
    lf = np.full(x.shape[0] + 2 * half, np.nan)
    lf[half:half + x.shape[0]][mask] = np.log2(x[mask].astype(np.float64))
    out = x.copy()
    tol = float(tolerance_cents) / 1200.0
    step = 8192                      # bounds the (step, window) view's copy in nanmedian
    for start in range(0, x.shape[0], step):
        view = sliding_window_view(lf[start:start + min(step, x.shape[0] - start) + 2 * half], 2 * half + 1)
        counts = np.count_nonzero(np.isfinite(view), axis=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = np.nanmedian(view, axis=1)
        own = lf[start + half:start + half + view.shape[0]]
        dev = own - ref
        ok = mask[start:start + view.shape[0]] & (counts >= min_voiced)
        seg = out[start:start + view.shape[0]]
        seg[ok & (np.abs(dev - 1.0) < tol)] *= 0.5
        seg[ok & (np.abs(dev + 1.0) < tol)] *= 2.0
    return out


def hz_to_midi(hz: Any) -> Any:
    """MIDI note number (69 = A4 = 440 Hz, fractional); NaN for unvoiced (<= 0) input."""
    h = np.asarray(hz, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(h > 0, 69.0 + 12.0 * np.log2(np.where(h > 0, h, 1.0) / 440.0), np.nan)
    return float(m) if m.ndim == 0 else m


def midi_to_hz(midi: Any) -> Any:
    """Hz of a (fractional) MIDI note number; NaN (unvoiced) maps back to 0.0."""
    m = np.asarray(midi, dtype=np.float64)
    h = np.where(np.isfinite(m), 440.0 * np.exp2((np.nan_to_num(m) - 69.0) / 12.0), 0.0)
    return float(h) if h.ndim == 0 else h


def _pair(f0_ref: Any, f0_est: Any) -> tuple[np.ndarray, np.ndarray]:
    ref, est = _contour(f0_ref, "f0_ref"), _contour(f0_est, "f0_est")
    if ref.shape != est.shape:
        raise ParameterError(
            f"f0_ref and f0_est must have the same number of frames; received {ref.shape[0]} and "
            f"{est.shape[0]}. Compute both on the same grid (same hop and n_frames).")
    both = _voiced(ref) & _voiced(est)
    return ref[both].astype(np.float64), est[both].astype(np.float64)


def cents_error(f0_ref: Any, f0_est: Any) -> np.ndarray:
    """Signed error in cents, ``1200 * log2(est / ref)``, on the frames voiced in both (float64)."""
    ref, est = _pair(f0_ref, f0_est)
    return 1200.0 * np.log2(est / ref)


def gross_pitch_error(f0_ref: Any, f0_est: Any, tolerance: float = 0.2) -> float:
    """Fraction of frames voiced in both whose relative error exceeds ``tolerance`` (NaN if none)."""
    ref, est = _pair(f0_ref, f0_est)
    if ref.size == 0:
        return math.nan
    return float(np.mean(np.abs(est / ref - 1.0) > tolerance))
