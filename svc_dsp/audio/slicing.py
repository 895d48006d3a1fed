"""Cutting long recordings into pieces: at silences, and at energy minima inside long phrases.

Conventions: ``audio`` is mono float of shape ``(N,)`` at ``sample_rate`` Hz (mix multichannel
audio down first, e.g. ``audio.mean(axis=0)``). Ranges are ``(start, end)`` sample indices,
``start`` inclusive, ``end`` exclusive, in increasing order.
"""
from __future__ import annotations

import math

import numpy as np

from svc_dsp.errors import AudioError

__all__ = ["frame_rms", "silence_slices", "split_long", "energy_minimum_cuts"]

Range = tuple[int, int]


def _mono(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim != 1:
        raise AudioError(f"audio of shape {x.shape}; allowed: mono (N,) — mix down first, "
                         "e.g. audio.mean(axis=0)")
    return x


def frame_rms(audio: np.ndarray, win: int, hop: int) -> np.ndarray:
    """RMS of centred frames: frame ``i`` covers samples ``[i*hop - win//2, i*hop + win//2)``
    (reflect-padded at the edges, like librosa's ``center=True``). Returns ``(1 + N // hop,)``
    linear RMS values (not dB)."""
    x = np.asarray(audio, dtype=np.float64)
    n = x.size
    half = win // 2
    if n > half:
        padded = np.pad(x, (half, half), mode="reflect")
    else:
        padded = np.pad(x, (half, half))
    cs = np.concatenate([[0.0], np.cumsum(np.square(padded))])
    starts = np.arange(0, n // hop + 1) * hop
    ends = np.minimum(starts + win, padded.size)
    energy = (cs[ends] - cs[starts]) / win
    return np.sqrt(np.maximum(energy, 0.0))


def silence_slices(audio: np.ndarray, sample_rate: int, *, threshold_db: float = -40.0,
                   min_length_s: float = 5.0, min_interval_s: float = 0.3, hop_s: float = 0.01,
                   max_sil_kept_s: float = 0.5) -> list[Range]:
    """Voiced pieces of ``audio`` ``(N,)``, cut at silences (the "audio-slicer" algorithm).

    Frames (``hop_s`` apart, window ``min(min_interval, 4 hops)``) whose RMS is below
    ``threshold_db`` dBFS are silent. A silent run of at least ``min_interval_s`` ends a piece
    only if the piece is already ``min_length_s`` long when the silence starts (shorter pieces
    run on into the next, so they are merged with their neighbour; audio-slicer itself counts
    to the end of the silence and can leave pieces slightly short); at most ``max_sil_kept_s`` of silence stays at each
    cut edge, cutting at the quietest frame. Leading/trailing silence is trimmed to
    ``max_sil_kept_s``. A last piece shorter than ``min_length_s`` is merged into the one
    before. Pieces that are silent throughout are dropped; all-silent audio gives ``[]``.
    """
    x = _mono(audio)
    n = x.size
    if n == 0:
        return []
    if min_interval_s <= 0 or hop_s <= 0 or min_length_s < 0 or max_sil_kept_s < 0:
        raise AudioError("silence_slices: min_interval_s and hop_s must be > 0, min_length_s "
                         "and max_sil_kept_s >= 0")
    threshold = 10.0 ** (threshold_db / 20.0)
    hop = max(1, int(round(sample_rate * hop_s)))
    min_interval_smp = sample_rate * min_interval_s
    win = max(1, min(int(round(min_interval_smp)), 4 * hop))
    min_length = int(round(sample_rate * min_length_s / hop))
    min_interval = max(1, int(round(min_interval_smp / hop)))
    max_sil_kept = int(round(sample_rate * max_sil_kept_s / hop))
    rms = frame_rms(x, win, hop)

    sil_tags: list[tuple[int, int]] = []
    silence_start: int | None = None
    clip_start = 0
    for i, value in enumerate(rms):
        if value < threshold:
            if silence_start is None:
                silence_start = i
            continue
        if silence_start is None:
            continue
        is_leading = silence_start == 0 and i > max_sil_kept
        # stricter than audio-slicer (which uses i - clip_start): every cut lies at or after
        # silence_start, so the finished piece is guaranteed to be >= min_length
        need_cut = i - silence_start >= min_interval and silence_start - clip_start >= min_length
        if not is_leading and not need_cut:
            silence_start = None
            continue
        if i - silence_start <= max_sil_kept:
            pos = int(rms[silence_start:i + 1].argmin()) + silence_start
            sil_tags.append((0, pos) if silence_start == 0 else (pos, pos))
            clip_start = pos
        elif i - silence_start <= max_sil_kept * 2:
            pos = int(rms[i - max_sil_kept:silence_start + max_sil_kept + 1].argmin())
            pos += i - max_sil_kept
            pos_l = int(rms[silence_start:silence_start + max_sil_kept + 1].argmin()) + silence_start
            pos_r = int(rms[i - max_sil_kept:i + 1].argmin()) + i - max_sil_kept
            if silence_start == 0:
                sil_tags.append((0, pos_r))
                clip_start = pos_r
            else:
                sil_tags.append((min(pos_l, pos), max(pos_r, pos)))
                clip_start = max(pos_r, pos)
        else:
            pos_l = int(rms[silence_start:silence_start + max_sil_kept + 1].argmin()) + silence_start
            pos_r = int(rms[i - max_sil_kept:i + 1].argmin()) + i - max_sil_kept
            sil_tags.append((0, pos_r) if silence_start == 0 else (pos_l, pos_r))
            clip_start = pos_r
        silence_start = None
    total = rms.size
    if silence_start is not None and total - silence_start >= min_interval:
        end = min(total, silence_start + max_sil_kept)
        pos = int(rms[silence_start:end + 1].argmin()) + silence_start
        sil_tags.append((pos, total + 1))

    frames: list[tuple[int, int]] = []
    if not sil_tags:
        frames.append((0, total))
    else:
        if sil_tags[0][0] > 0:
            frames.append((0, sil_tags[0][0]))
        for (_, a), (b, _) in zip(sil_tags[:-1], sil_tags[1:]):
            frames.append((a, b))
        if sil_tags[-1][1] < total:
            frames.append((sil_tags[-1][1], total))

    ranges: list[Range] = []
    for a, b in frames:
        if b <= a or rms[a:b].max(initial=0.0) < threshold:
            continue  # empty or silent throughout
        ranges.append((min(a * hop, n), min(b * hop, n)))
    ranges = [(a, b) for a, b in ranges if b > a]
    min_len_smp = sample_rate * min_length_s
    if len(ranges) >= 2 and ranges[-1][1] - ranges[-1][0] < min_len_smp:
        last = ranges.pop()
        ranges[-1] = (ranges[-1][0], last[1])
    return ranges


def _cut_between(rms: np.ndarray, hop: int, lo: int, hi: int, fallback: int) -> int:
    """Sample position of the quietest frame whose centre lies in ``[lo, hi]``."""
    f_lo = -(-lo // hop)
    f_hi = min(hi // hop, rms.size - 1)
    if f_hi < f_lo:
        return fallback
    return (f_lo + int(np.argmin(rms[f_lo:f_hi + 1]))) * hop


def _energy_frames(x: np.ndarray, sample_rate: int) -> tuple[np.ndarray, int]:
    hop = max(1, int(round(0.01 * sample_rate)))
    return frame_rms(x, 4 * hop, hop), hop


def energy_minimum_cuts(audio: np.ndarray, sample_rate: int, *, target_len: int,
                        search_len: int) -> list[int]:
    """Cut points (sample indices, strictly increasing, inside ``(0, N)``) for ``audio`` ``(N,)``.

    The signal is divided into ``k = ceil(N / target_len)`` equal parts; each ideal cut is moved
    to the quietest 10 ms frame (RMS over 40 ms) within ``±search_len/2`` samples. Pieces are
    therefore at most ``target_len + search_len`` long. ``N <= target_len`` gives ``[]``.
    """
    x = _mono(audio)
    n = x.size
    if target_len < 1 or search_len < 0:
        raise AudioError(f"target_len={target_len}, search_len={search_len}; allowed: "
                         "target_len >= 1, search_len >= 0")
    if n <= target_len:
        return []
    rms, hop = _energy_frames(x, sample_rate)
    k = math.ceil(n / target_len)
    cuts: list[int] = []
    prev = 0
    for i in range(1, k):
        ideal = int(round(i * n / k))
        lo = max(prev + 1, ideal - search_len // 2)
        hi = min(n - 1, ideal + search_len // 2)
        cut = _cut_between(rms, hop, lo, hi, fallback=max(prev + 1, min(ideal, n - 1)))
        if prev < cut < n:
            cuts.append(cut)
            prev = cut
    return cuts


def split_long(audio: np.ndarray, sample_rate: int, ranges: list[Range], *,
               max_length_s: float = 15.0, min_length_s: float = 5.0) -> list[Range]:
    """Split ``ranges`` of ``audio`` ``(N,)`` so that no piece is longer than ``max_length_s``.

    A long range is cut into ``ceil(len / max)`` pieces; each cut sits at the quietest 10 ms
    frame within a quarter of ``max_length_s`` of its ideal place, constrained so that every
    piece stays <= max and the rest can still be split. Afterwards a piece shorter than
    ``min_length_s`` is merged with the neighbour giving the shorter result, when that result
    (including any gap between them) is still <= max; otherwise it stays as it is.
    """
    x = _mono(audio)
    max_len = int(math.floor(max_length_s * sample_rate))
    min_len = int(math.ceil(min_length_s * sample_rate))
    if max_len < 1:
        raise AudioError(f"max_length_s={max_length_s}; allowed: > 0")
    rms, hop = _energy_frames(x, sample_rate)
    half = max(hop, max_len // 4)
    pieces: list[Range] = []
    for start, end in ranges:
        if not 0 <= start < end <= x.size:
            raise AudioError(f"range ({start}, {end}); allowed: 0 <= start < end <= {x.size}")
        pos = start
        while end - pos > max_len:
            rem = end - pos
            k = math.ceil(rem / max_len)
            ideal = pos + rem // k
            lo = max(pos + 1, end - (k - 1) * max_len, ideal - half)
            hi = min(pos + max_len, ideal + half)
            if k == 2:  # the last cut: keep the tail usable
                lo2, hi2 = max(lo, pos + min_len), min(hi, end - min_len)
                if lo2 <= hi2:
                    lo, hi = lo2, hi2
            cut = _cut_between(rms, hop, lo, hi, fallback=ideal)
            if not lo <= cut <= hi:
                cut = ideal
            pieces.append((pos, cut))
            pos = cut
        pieces.append((pos, end))
    return _merge_short(pieces, min_len, max_len)


def _merge_short(pieces: list[Range], min_len: int, max_len: int) -> list[Range]:
    out = list(pieces)
    i = 0
    while i < len(out):
        a, b = out[i]
        if b - a >= min_len or len(out) == 1:
            i += 1
            continue
        options = []
        if i > 0 and b - out[i - 1][0] <= max_len:
            options.append((b - out[i - 1][0], i - 1))
        if i + 1 < len(out) and out[i + 1][1] - a <= max_len:
            options.append((out[i + 1][1] - a, i + 1))
        if not options:
            i += 1
            continue
        _, j = min(options)
        lo, hi = min(i, j), max(i, j)
        out[lo:hi + 1] = [(out[lo][0], out[hi][1])]
        i = lo  # re-check the merged piece
    return out
