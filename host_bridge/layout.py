"""Array layouts the way pedalboard reads them, so our effects take what its plugins take.

pedalboard 0.9.26 (``BufferUtils.h: detectChannelLayout`` + ``Plugin.h:
parseAndCacheChannelLayout``), copied rule for rule:

- ``(samples,)`` is mono; the result is ``(samples,)`` again.
- ``(a, b)``: the smaller dimension is the channel count. ``(C, 0)`` is C channels of nothing,
  ``(0, N)`` is read as ``(samples=0, channels=N)``; ``(1, 1)`` is one sample of one channel.
- The channel count of the previous call is a hint: ``(2, 1)`` after a stereo call is one stereo
  sample (without the hint pedalboard, and we, read it as two mono samples).
- A square array ``(n, n)`` with ``n > 1`` is ambiguous: the layout of the previous call is
  used; with no previous call it is an error. ``reset()`` forgets the hint and the layout
  (``process(..., reset=True)`` does not, as in pedalboard).

Output is float32 in the caller's layout. Integer and other non-float arrays are refused with
``TypeError`` (as pedalboard does), with the conversion that fixes it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from svc_dsp.errors import AudioError

CHANNELS_FIRST = "channels_first"  # (C, N): pedalboard's "NotInterleaved"
CHANNELS_LAST = "channels_last"  # (N, C): pedalboard's "Interleaved" (soundfile, librosa)


def check_dtype(a: np.ndarray) -> None:
    """Accept float32/float64 only; explain how to convert anything else."""
    if a.dtype in (np.float32, np.float64):
        return
    if a.dtype.kind in "iu":
        full = 2 ** (8 * a.dtype.itemsize - 1) if a.dtype.kind == "i" else 2 ** (8 * a.dtype.itemsize)
        hint = f"audio.astype(np.float32) / {full}" if a.dtype.kind == "i" else \
            f"audio.astype(np.float32) / {full // 2} - 1.0"
        raise TypeError(
            f"received integer audio ({a.dtype}); only float32 or float64 audio with full scale 1.0 is "
            f"processed, because integer samples have no agreed scale. Convert with {hint} "
            f"(or read files with dtype='float32').")
    raise TypeError(f"received {a.dtype} audio; only float32 or float64 is processed. "
                    f"Convert with audio.astype(np.float32).")


@dataclass
class LayoutMemory:
    """What pedalboard remembers between calls: last channel count and last 2-D layout."""

    channels: int = 0
    layout: str | None = None

    def clear(self) -> None:
        self.channels, self.layout = 0, None

    def detect(self, shape: tuple[int, ...]) -> str:
        """Layout of a 2-D ``shape`` by pedalboard's rule (updates the memory)."""
        try:
            found = _detect(shape, self.channels or None)
        except AudioError:
            if self.layout is None:
                raise
            found = self.layout  # pedalboard: "use the last cached layout"
        self.layout = found
        return found

    def to_channels_first(self, array: np.ndarray) -> tuple[np.ndarray, str | None]:
        """array -> (float32 (C, N) contiguous, layout or None for 1-D)."""
        a = np.asarray(array)
        check_dtype(a)
        if a.ndim == 1:
            x, lay = a[None, :], None
        elif a.ndim == 2:
            lay = self.detect(a.shape)
            x = a if lay == CHANNELS_FIRST else a.T
        else:
            raise AudioError(f"audio must have 1 or 2 dimensions, (samples,), (channels, samples) or "
                             f"(samples, channels); received shape {a.shape}")
        self.channels = x.shape[0]
        return np.ascontiguousarray(x, dtype=np.float32), lay

    @staticmethod
    def restore(y: np.ndarray, layout: str | None) -> np.ndarray:
        """(C, N) float32 -> the caller's layout."""
        if layout is None:
            return y[0]
        return y if layout == CHANNELS_FIRST else np.ascontiguousarray(y.T)


def _detect(shape: tuple[int, ...], hint: int | None) -> str:
    a, b = shape
    if hint:
        if a == b and a > 1:
            raise AudioError(_ambiguous(shape))
        if a == hint:
            return CHANNELS_FIRST
        if b == hint:
            return CHANNELS_LAST
    if a == 0 and b > 0:
        return CHANNELS_LAST  # zero channels makes no sense; zero samples does
    if b == 0 and a > 0:
        return CHANNELS_FIRST
    if b < a:
        return CHANNELS_LAST
    if a < b:
        return CHANNELS_FIRST
    if a == 1 or b == 1 or a == 0:
        return CHANNELS_FIRST  # one sample (or nothing): the layout does not matter
    raise AudioError(_ambiguous(shape))


def _ambiguous(shape: tuple[int, ...]) -> str:
    return (f"cannot tell channels from samples in an array of shape {shape}; pass a non-square array "
            f"first (or transpose to (channels, samples) with more samples than channels) so the "
            f"layout can be determined, as pedalboard requires")
