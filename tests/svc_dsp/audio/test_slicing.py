"""svc_dsp.audio.slicing: silence slicer, long-range splitting, energy-minimum cuts."""
from __future__ import annotations

import numpy as np
import pytest

from svc_dsp.audio.slicing import energy_minimum_cuts, silence_slices, split_long
from svc_dsp.errors import AudioError

SR = 16000


def _burst_track(layout):
    """layout: list of ('tone'|'sil', seconds). Returns (audio, [(start, end) of tones])."""
    parts, tones, pos = [], [], 0
    rng = np.random.default_rng(0)
    for kind, sec in layout:
        n = int(sec * SR)
        if kind == "tone":
            t = np.arange(n) / SR
            parts.append(0.3 * np.sin(2 * np.pi * 220 * t) + 0.02 * rng.standard_normal(n))
            tones.append((pos, pos + n))
        else:
            parts.append(1e-4 * rng.standard_normal(n))  # -80 dBFS room noise
        pos += n
    return np.concatenate(parts).astype(np.float32), tones


def test_slicer_finds_tone_bursts():
    x, tones = _burst_track([("sil", 1.5), ("tone", 6.0), ("sil", 1.0), ("tone", 7.0),
                             ("sil", 2.0), ("tone", 5.5), ("sil", 3.0)])
    ranges = silence_slices(x, SR)
    assert len(ranges) == 3
    keep = int(0.5 * SR) + int(0.05 * SR)  # max_sil_kept plus one analysis window
    for (a, b), (ta, tb) in zip(ranges, tones):
        assert a <= ta and b >= tb  # the whole burst is inside its piece
        assert ta - a <= keep and b - tb <= keep  # at most ~max_sil_kept of silence kept
    assert all(r1[1] <= r2[0] for r1, r2 in zip(ranges, ranges[1:]))


def test_slicer_merges_short_pieces_and_handles_silence():
    x, tones = _burst_track([("tone", 2.0), ("sil", 0.6), ("tone", 2.0), ("sil", 0.6),
                             ("tone", 2.0), ("sil", 0.6), ("tone", 2.0), ("sil", 1.0)])
    ranges = silence_slices(x, SR, min_length_s=5.0)
    # a piece ends only once it is 5 s long (after 3 bursts); the 2 s rest is merged back
    assert len(ranges) == 1
    assert ranges[0][0] == 0 and ranges[0][1] >= tones[-1][1]
    x2 = np.concatenate([x, x])
    ranges = silence_slices(x2, SR, min_length_s=5.0)
    assert len(ranges) >= 2 and all(b - a >= 5 * SR for a, b in ranges)
    ranges = silence_slices(x, SR, min_length_s=1.0)
    assert len(ranges) == 4
    assert silence_slices(np.zeros(SR * 3, np.float32), SR) == []
    assert silence_slices(np.zeros(0, np.float32), SR) == []
    with pytest.raises(AudioError, match="mono"):
        silence_slices(np.zeros((2, 100)), SR)


def _dipped(seconds, dips):
    """Steady tone with quiet 60 ms dips at the given times (s)."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 200 * t)
    for d in dips:
        i = int(d * SR)
        x[i - int(0.03 * SR):i + int(0.03 * SR)] *= 0.001
    return x.astype(np.float32)


def test_split_long_cuts_at_energy_minima():
    x = _dipped(40.0, dips=[12.0, 25.3])
    pieces = split_long(x, SR, [(0, x.size)], max_length_s=15.0, min_length_s=5.0)
    assert all(b - a <= 15 * SR for a, b in pieces)
    assert pieces[0][0] == 0 and pieces[-1][1] == x.size
    assert all(p[1] == q[0] for p, q in zip(pieces, pieces[1:]))
    cuts = [b for _, b in pieces[:-1]]
    assert len(cuts) == 2
    assert abs(cuts[0] - 12.0 * SR) < 0.04 * SR and abs(cuts[1] - 25.3 * SR) < 0.04 * SR


def test_split_long_merges_short_pieces_and_keeps_short_ranges():
    x = _dipped(30.0, dips=[])
    ranges = [(0, 8 * SR), (int(8.5 * SR), 10 * SR), (11 * SR, 30 * SR)]
    pieces = split_long(x, SR, ranges, max_length_s=15.0, min_length_s=5.0)
    assert all(b - a <= 15 * SR for a, b in pieces)
    assert pieces[0] == (0, 10 * SR)  # the 1.5 s piece joined its shorter neighbour
    assert pieces[-1][1] == 30 * SR and len(pieces) == 3
    assert split_long(x, SR, [(0, 3 * SR)]) == [(0, 3 * SR)]


def test_energy_minimum_cuts():
    x = _dipped(20.0, dips=[4.7, 10.4, 15.2])
    cuts = energy_minimum_cuts(x, SR, target_len=5 * SR, search_len=2 * SR)
    assert len(cuts) == 3
    for c, d in zip(cuts, [4.7, 10.4, 15.2]):
        assert abs(c - d * SR) < 0.04 * SR
    pieces = np.diff([0, *cuts, x.size])
    assert pieces.max() <= 5 * SR + 2 * SR and pieces.min() > 0
    assert energy_minimum_cuts(x[: 4 * SR], SR, target_len=5 * SR, search_len=SR) == []
