"""Frame loudness: level, grid alignment, streaming == offline, lookahead."""
from __future__ import annotations

import numpy as np
import pytest

from svc_dsp.errors import ParameterError
from svc_dsp.features.f0 import n_frames_for
from svc_dsp.features.loudness import FLOOR_DB, LoudnessStream, frame_loudness_db

SR, HOP = 24000, 120


def test_sine_level_and_silence_floor():
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    db = frame_loudness_db(x, SR, HOP, n_frames_for(x.size, HOP))
    assert db.dtype == np.float32
    np.testing.assert_allclose(db[5:-5], 20 * np.log10(0.5 / np.sqrt(2)), atol=0.1)
    assert np.all(frame_loudness_db(np.zeros(1000), SR, HOP, 9) == FLOOR_DB)


@pytest.mark.parametrize("window", [None, 240, 241])
def test_window_is_centred_on_the_end_of_each_hop(window):
    x = np.zeros(40 * HOP)
    x[20 * HOP] = 1.0                      # frame 19 describes the signal around sample 20 * hop
    db = frame_loudness_db(x, SR, HOP, 40, window=window)
    assert int(np.argmax(db)) == 19
    w = 3 * HOP if window is None else window
    idx = 20 * HOP - ((np.arange(40) + 1) * HOP + w // 2 - w)   # impulse's position in each window
    np.testing.assert_array_equal(db > FLOOR_DB, (idx > 0) & (idx < w))   # Hann is 0 at idx 0
    if w % 2 == 0:                          # symmetric around the peak for even windows
        np.testing.assert_array_equal(db[19 - 1], db[19 + 1])


@pytest.mark.parametrize("n_samples", [0, 1, HOP - 1, 7 * HOP + 5])
def test_output_length_is_n_frames(n_samples):
    x = np.ones(n_samples, np.float32) * 0.1
    n = n_frames_for(n_samples, HOP)
    assert frame_loudness_db(x, SR, HOP, n).shape == (n,)
    assert frame_loudness_db(x, SR, HOP, n + 2).shape == (n + 2,)


@pytest.mark.parametrize("sizes", [[1], [7], [120], [512], [4096], "random"])
def test_stream_equals_offline_exactly(sizes):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(SR // 2) * np.linspace(0, 1, SR // 2) ** 2).astype(np.float32)
    if sizes == "random":
        sizes = list(rng.integers(0, 900, size=64))
    st = LoudnessStream(SR, HOP)
    assert st.lookahead_samples == 3 * HOP // 2
    outs, pos, k = [], 0, 0
    while pos < x.size:
        outs.append(st.push(x[pos:pos + sizes[k % len(sizes)]]))
        pos += sizes[k % len(sizes)]
        k += 1
    got = np.concatenate(outs)
    ref = frame_loudness_db(x, SR, HOP, n_frames_for(x.size, HOP))
    assert got.size == (x.size - st.lookahead_samples) // HOP == st.frames_emitted
    np.testing.assert_array_equal(got, ref[:got.size])
    st.reset()
    np.testing.assert_array_equal(st.push(x), got)


def test_lookahead_is_respected():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(SR // 4)
    n = n_frames_for(x.size, HOP)
    base = frame_loudness_db(x, SR, HOP, n)
    la = LoudnessStream(SR, HOP).lookahead_samples
    for k in (3000, 3001, 3119):
        y = x.copy()
        y[k:] *= 2.0
        first = int(np.flatnonzero(frame_loudness_db(y, SR, HOP, n) != base)[0])
        assert (first + 1) * HOP + la > k >= first * HOP + la


def test_bad_window_is_refused():
    with pytest.raises(ParameterError, match="window"):
        frame_loudness_db(np.zeros(100), SR, HOP, 1, window=1)
