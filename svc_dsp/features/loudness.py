"""Frame loudness: windowed RMS in dB on the shared frame grid, offline and streaming.

Frame j (around sample c = (j + 1) * hop) is the Hann-weighted mean square of samples
``[c + L - window, c + L)`` with ``L = window // 2`` (the lookahead), i.e. a periodic Hann window
of ``window`` samples whose peak sits on c (for even windows exactly). Samples before 0 or past
the end count as zeros. Value: ``10 * log10(mean square)`` dB re full scale, floored at -120 dB.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from svc_dsp.errors import AudioError, ParameterError
from svc_dsp.features.f0 import check_audio, check_grid

__all__ = ["FLOOR_DB", "LoudnessStream", "frame_loudness_db"]

FLOOR_DB = -120.0
_MS_FLOOR = 10.0 ** (FLOOR_DB / 10.0)


def _check_window(window: Any, hop: int) -> int:
    if window is None:
        return 3 * hop
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ParameterError(
            f"loudness window must be an integer >= 2 samples; received {window!r}. "
            f"Leave it out for the default of 3 * hop = {3 * hop}.")
    return int(window)


class LoudnessStream:
    """Live :func:`frame_loudness_db`: push blocks of any size, get the frames that became complete.

    Equal to the offline function frame by frame, bit for bit. ``lookahead_samples = window // 2``.
    Non-finite samples are read as zeros. Preallocated ring; per-push temporaries only.
    """

    _PIECE_HOPS = 64

    def __init__(self, sample_rate: int, hop: int, window: int | None = None) -> None:
        self.sample_rate, self.hop, _ = check_grid(sample_rate, hop)
        self.window = _check_window(window, self.hop)
        self.lookahead_samples = self.window // 2
        n = np.arange(self.window)
        self._hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.window)
        self._hann_sum = float(self._hann.sum())
        self._piece = self.hop * self._PIECE_HOPS
        self._buf = np.zeros(self.window + self._piece + 1)
        self._cols = np.arange(self.window)
        self.reset()

    @property
    def frames_emitted(self) -> int:
        return self._next

    def reset(self) -> None:
        """Forget all pushed audio: the next push starts a new signal at sample 0."""
        self._buf[:self.window] = 0.0
        self._base, self._fill = -self.window, self.window
        self._n_in = 0
        self._next = 0

    def push(self, block: np.ndarray) -> np.ndarray:
        """Feed the next samples (shape (n,), n >= 0); returns float32 dB of the frames completed."""
        x = np.asarray(block)
        if x.ndim != 1:
            raise AudioError(f"push needs a mono block of shape (n,); received shape {x.shape}.")
        if x.shape[0] <= self._piece:
            return self._push_piece(x)
        return np.concatenate([self._push_piece(x[i:i + self._piece])
                               for i in range(0, x.shape[0], self._piece)])

    def _push_piece(self, x: np.ndarray) -> np.ndarray:
        m, w = x.shape[0], self.window
        if self._fill + m > self._buf.shape[0]:
            self._buf[:w] = self._buf[self._fill - w:self._fill]
            self._base += self._fill - w
            self._fill = w
        dst = self._buf[self._fill:self._fill + m]
        dst[:] = x
        if m and not np.isfinite(dst).all():
            np.nan_to_num(dst, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        self._fill += m
        self._n_in += m
        L, hop = self.lookahead_samples, self.hop
        done = (self._n_in - L) // hop if self._n_in >= L else 0
        if done <= self._next:
            return np.zeros(0, dtype=np.float32)
        starts = (np.arange(self._next, done) + 1) * hop + L - w - self._base
        seg = self._buf[starts[:, None] + self._cols]
        self._next = done
        ms = np.sum(seg * seg * self._hann, axis=1) / self._hann_sum
        return (10.0 * np.log10(np.maximum(ms, _MS_FLOOR))).astype(np.float32)


def frame_loudness_db(audio: np.ndarray, sample_rate: int, hop: int, n_frames: int,
                      window: int | None = None) -> np.ndarray:
    """Loudness of ``audio`` (float (N,), at ``sample_rate``) per frame: float32 (n_frames,) dB.

    Hann-weighted RMS over ``window`` samples (default 3 * hop) centred on (j + 1) * hop,
    floored at -120 dB; see the module docstring for the exact span.
    """
    sample_rate, hop, n_frames = check_grid(sample_rate, hop, n_frames)
    x = check_audio(audio)
    st = LoudnessStream(sample_rate, hop, window)
    if n_frames == 0:
        return np.zeros(0, dtype=np.float32)
    need = n_frames * hop + st.lookahead_samples
    padded = np.zeros(need)
    padded[:min(need, x.shape[0])] = x[:need]
    return st.push(padded)
