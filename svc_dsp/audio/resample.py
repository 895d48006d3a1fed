"""Sample-rate conversion with libsoxr (python-soxr): one-shot and stateful streaming.

Conventions: audio is float32 of shape ``(C, N)`` (channels first) or mono ``(N,)``.

:func:`resample` is for whole signals: it is time-aligned (no delay) and returns exactly
``round(N * sr_out / sr_in)`` samples.

:class:`StreamResampler` is for block processing with a FIXED latency. libsoxr aligns its output
(it trims its own filter delay) but holds back a varying number of output samples between
calls — up to about one internal processing block (e.g. ~920 samples at 48000 -> 24000 HQ).
A real-time engine needs a constant latency instead, so the stream is made causal: its output
is libsoxr's output preceded by ``delay_out`` zeros, and after ``n`` input samples in total it
has returned ``floor(n * sr_out / sr_in)`` samples in total. ``delay_out`` is the worst-case
hold-back, measured once per (rates, quality) at construction by feeding silence about one
output sample at a time (see :func:`_measure_holdback`), plus 2-3 samples of margin. Should libsoxr
ever hold back more than that, a call returns fewer samples and later calls catch up; the
concatenated output is unchanged.
"""
from __future__ import annotations

import functools

import numpy as np
import soxr

from svc_dsp.errors import AudioError

__all__ = ["resample", "StreamResampler", "output_length", "QUALITIES"]

QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def _check_rates(sr_in: int, sr_out: int) -> tuple[int, int]:
    for name, sr in (("sr_in", sr_in), ("sr_out", sr_out)):
        if int(sr) != sr or sr <= 0:
            raise AudioError(f"{name}={sr!r}; allowed: a positive whole number of Hz")
    return int(sr_in), int(sr_out)


def _check_quality(quality: str) -> str:
    q = str(quality).upper()
    if q not in QUALITIES:
        raise AudioError(f"quality={quality!r}; allowed: {', '.join(QUALITIES)}")
    return q


def output_length(n: int, sr_in: int, sr_out: int) -> int:
    """``round(n * sr_out / sr_in)`` in exact integer arithmetic (halves round up)."""
    return (2 * n * sr_out + sr_in) // (2 * sr_in)


def resample(audio: np.ndarray, sr_in: int, sr_out: int, *, quality: str = "VHQ") -> np.ndarray:
    """Resample ``audio`` of shape ``(N,)`` or ``(C, N)`` from ``sr_in`` to ``sr_out`` Hz.

    Returns float32 of shape ``(M,)`` / ``(C, M)`` with ``M == round(N * sr_out / sr_in)``,
    time-aligned with the input (libsoxr removes its filter delay). Equal rates return the
    input as float32 (no copy if already float32).
    """
    sr_in, sr_out = _check_rates(sr_in, sr_out)
    q = _check_quality(quality)
    x = np.asarray(audio)
    if x.ndim not in (1, 2):
        raise AudioError(f"audio of shape {x.shape}; allowed: (N,) or (C, N)")
    x = x.astype(np.float32, copy=False)
    if sr_in == sr_out:
        return x
    n = x.shape[-1]
    m = output_length(n, sr_in, sr_out)
    if n == 0:
        return np.zeros(x.shape[:-1] + (0,), np.float32)
    # (C, N) C-contiguous -> .T is (N, C) with channel-split layout, which soxr reads directly.
    y = soxr.resample(np.ascontiguousarray(x).T, sr_in, sr_out, q)
    y = np.asarray(y, dtype=np.float32).T
    if y.shape[-1] > m:
        y = y[..., :m]
    elif y.shape[-1] < m:
        pad = [(0, 0)] * (y.ndim - 1) + [(0, m - y.shape[-1])]
        y = np.pad(y, pad)
    return np.ascontiguousarray(y)


@functools.lru_cache(maxsize=64)
def _measure_holdback(sr_in: int, sr_out: int, quality: str) -> int:
    """Largest number of output samples libsoxr holds back, ``floor(n*sr_out/sr_in) - produced``.

    Feeds silence in blocks of ``max(1, sr_in // sr_out)`` input samples (about one output
    sample per call, so no peak is skipped by more than one sample) for 0.5 s of input — a few
    of libsoxr's internal processing periods — and takes the maximum.
    """
    stream = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality=quality)
    step = max(1, sr_in // sr_out)
    zeros = np.zeros(step, np.float32)
    span = max(sr_in // 2, 16384)
    produced = 0
    worst = 0
    for n in range(step, span + 1, step):
        produced += stream.resample_chunk(zeros).shape[0]
        worst = max(worst, n * sr_out // sr_in - produced)
    return worst + step * sr_out // sr_in + 1


class StreamResampler:
    """Stateful resampler for ``(C, n)`` float blocks with a fixed, reported latency.

    ``process(block)`` returns ``(C, m)`` with ``m`` varying so that the total returned after
    ``n_total`` input samples is ``floor(n_total * sr_out / sr_in)``. Output sample ``j``
    corresponds to input time ``(j - delay_out) / sr_out`` seconds: the signal comes out
    ``delay_out`` output samples late (the first ``delay_out`` samples are silence).
    ``flush()`` returns everything still pending (the delayed tail), after which the stream
    holds exactly ``delay_out + round(N * sr_out / sr_in)`` samples (libsoxr's length).
    Any block partition, including 1-sample blocks, gives the same concatenated output.
    Equal rates are an exact pass-through with ``delay_out == 0``.
    Mono streams also accept and return ``(n,)`` arrays.
    """

    def __init__(self, sr_in: int, sr_out: int, channels: int, *, quality: str = "HQ") -> None:
        self.sr_in, self.sr_out = _check_rates(sr_in, sr_out)
        self.quality = _check_quality(quality)
        if int(channels) != channels or not 1 <= channels <= 65536:
            raise AudioError(f"channels={channels!r}; allowed: 1..65536")
        self.channels = int(channels)
        self.passthrough = self.sr_in == self.sr_out
        self._delay = 0 if self.passthrough else _measure_holdback(self.sr_in, self.sr_out,
                                                                   self.quality)
        self._stream: soxr.ResampleStream | None = None
        self.reset()

    @property
    def delay_out(self) -> float:
        """Latency in OUTPUT samples (a whole number; 0.0 for a pass-through)."""
        return float(self._delay)

    @property
    def delay_seconds(self) -> float:
        """Latency in seconds (``delay_out / sr_out``)."""
        return self._delay / self.sr_out

    def reset(self) -> None:
        """Forget all state: the next block starts a new stream (with the same latency)."""
        if not self.passthrough:
            if self._stream is None:
                self._stream = soxr.ResampleStream(self.sr_in, self.sr_out, self.channels,
                                                   dtype="float32", quality=self.quality)
            else:
                self._stream.clear()
        self._n_in = 0
        self._n_out = 0
        self._flushed = False
        self._mono_io = False
        # pending output, channels first; starts with the latency's worth of silence
        self._pending = np.zeros((self.channels, self._delay), np.float32)

    def _as_block(self, block: np.ndarray) -> tuple[np.ndarray, bool]:
        x = np.asarray(block)
        mono = x.ndim == 1
        if mono and self.channels == 1:
            x = x[np.newaxis, :]
        if x.ndim != 2 or x.shape[0] != self.channels:
            raise AudioError(
                f"block of shape {x.shape}; allowed: ({self.channels}, n) (channels first)"
                + (" or (n,)" if self.channels == 1 else "") + " — transpose (n, C) with .T"
            )
        if x.dtype.kind != "f":
            raise AudioError(f"block dtype {x.dtype}; allowed: float")
        return x.astype(np.float32, copy=False), mono

    def process(self, block: np.ndarray) -> np.ndarray:
        """Feed ``(C, n)`` samples at ``sr_in``; return ``(C, m)`` float32 at ``sr_out``."""
        if self._flushed:
            raise AudioError("process() after flush(); call reset() to start a new stream")
        x, mono = self._as_block(block)
        self._mono_io = mono
        if self.passthrough:
            y = x.copy()
            return y[0] if mono else y
        assert self._stream is not None
        if x.shape[1]:
            new = self._stream.resample_chunk(np.ascontiguousarray(x.T))
            if new.shape[0]:
                self._pending = np.concatenate([self._pending, new.T], axis=1)
        self._n_in += x.shape[1]
        due = self._n_in * self.sr_out // self.sr_in - self._n_out
        y = self._take(max(0, min(due, self._pending.shape[1])))
        return y[0] if mono else y

    def _take(self, m: int) -> np.ndarray:
        out = np.ascontiguousarray(self._pending[:, :m])
        self._pending = self._pending[:, m:]
        self._n_out += m
        return out

    def flush(self) -> np.ndarray:
        """End the stream: return the remaining ``(C, m)`` samples (the delayed tail);
        ``(m,)`` when the last ``process`` call was given a mono ``(n,)`` block."""
        if self.passthrough or self._flushed:
            self._flushed = True
            y = np.zeros((self.channels, 0), np.float32)
        else:
            assert self._stream is not None
            tail = self._stream.resample_chunk(np.zeros((0, self.channels), np.float32),
                                               last=True)
            if tail.shape[0]:
                self._pending = np.concatenate([self._pending, tail.T], axis=1)
            self._flushed = True
            y = self._take(self._pending.shape[1])
        return y[0] if self._mono_io else y

    def expected_total(self, n_in_total: int) -> int:
        """Samples returned in total by ``process`` after ``n_in_total`` input samples."""
        return n_in_total * self.sr_out // self.sr_in

    def __repr__(self) -> str:
        return (f"StreamResampler({self.sr_in} -> {self.sr_out} Hz, {self.channels} ch, "
                f"{self.quality}, delay_out={self._delay})")

