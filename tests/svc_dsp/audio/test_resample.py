"""svc_dsp.audio.resample: one-shot lengths/accuracy, stream block invariance and latency."""
from __future__ import annotations

import numpy as np
import pytest
import soxr

from svc_dsp.audio.resample import StreamResampler, resample
from svc_dsp.errors import AudioError

PAIRS = [(22050, 24000), (48000, 24000), (44100, 24000), (192000, 24000), (24000, 48000)]


@pytest.mark.parametrize("sr_in,sr_out", PAIRS + [(8000, 44100), (44100, 44100)])
@pytest.mark.parametrize("n", [0, 1, 999, 4410])
def test_resample_length_and_dtype(sr_in, sr_out, n):
    x = np.random.default_rng(n).standard_normal((2, n))
    y = resample(x, sr_in, sr_out)
    m = int(np.floor(n * sr_out / sr_in + 0.5))
    assert y.shape == (2, m) and y.dtype == np.float32
    assert resample(x[0], sr_in, sr_out).shape == (m,)


def test_resample_identity_and_accuracy():
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    assert resample(x, 48000, 48000) is x
    sr_in, sr_out = 44100, 24000
    t = np.arange(sr_in // 2) / sr_in
    y = resample(np.sin(2 * np.pi * 1000 * t), sr_in, sr_out)
    ref = np.sin(2 * np.pi * 1000 * np.arange(y.size) / sr_out)
    assert np.max(np.abs(y - ref)[500:-500]) < 1e-3  # time-aligned: no delay


def _random_blocks(rng, n):
    """Block sizes: a run of 1-sample blocks, then random sizes (some 0), up to n."""
    sizes = [1] * 200
    while sum(sizes) < n:
        sizes.append(int(rng.choice([0, 1, 2, 7, int(rng.integers(1, 3000))])))
    return sizes


@pytest.mark.parametrize("sr_in,sr_out", PAIRS)
def test_stream_equals_one_call_for_random_blocks(sr_in, sr_out):
    rng = np.random.default_rng(sr_in + sr_out)
    n = int(0.3 * sr_in)
    x = rng.standard_normal((2, n)).astype(np.float32)
    one = StreamResampler(sr_in, sr_out, 2)
    ref = np.concatenate([one.process(x), one.flush()], axis=1)
    d = int(one.delay_out)
    aligned = soxr.ResampleStream(sr_in, sr_out, 2, dtype="float32", quality="HQ")
    body = aligned.resample_chunk(np.ascontiguousarray(x.T), last=True).T
    assert ref.shape[1] == d + body.shape[1]
    assert not ref[:, :d].any() and np.array_equal(ref[:, d:], body)

    for trial in range(2):
        s = StreamResampler(sr_in, sr_out, 2)
        outs, pos = [], 0
        for size in _random_blocks(rng, n):
            y = s.process(x[:, pos:pos + size])
            pos = min(n, pos + size)
            assert y.shape[0] == 2 and y.dtype == np.float32
            outs.append(y)
            assert sum(o.shape[1] for o in outs) == s.expected_total(pos)  # fixed latency
        outs.append(s.flush())
        assert np.array_equal(np.concatenate(outs, axis=1), ref)


@pytest.mark.parametrize("sr_in,sr_out", PAIRS)
def test_stream_delay_matches_impulse(sr_in, sr_out):
    n = int(0.25 * sr_in)
    k = n // 3
    x = np.zeros(n, np.float32)
    x[k] = 1.0
    s = StreamResampler(sr_in, sr_out, 1)
    y = np.concatenate([s.process(x[: n // 2]), s.process(x[n // 2:]), s.flush()])
    ideal = resample(x, sr_in, sr_out)  # time-aligned reference
    corr = np.correlate(y, ideal, mode="full")
    lag = int(np.argmax(corr)) - (ideal.size - 1)
    assert abs(lag - s.delay_out) <= 1
    assert s.delay_out == int(s.delay_out) and s.delay_out > 0
    assert s.delay_seconds == pytest.approx(s.delay_out / sr_out)


def test_stream_passthrough_and_reset():
    x = np.random.default_rng(1).standard_normal((2, 500)).astype(np.float32)
    p = StreamResampler(48000, 48000, 2)
    assert p.delay_out == 0.0
    assert np.array_equal(p.process(x), x) and p.flush().shape == (2, 0)

    s = StreamResampler(48000, 24000, 2)
    first = np.concatenate([s.process(x), s.flush()], axis=1)
    s.reset()
    again = np.concatenate([s.process(x[:, :123]), s.process(x[:, 123:]), s.flush()], axis=1)
    assert np.array_equal(first, again)
    with pytest.raises(AudioError, match="reset"):
        s.process(x)


def test_stream_mono_1d_and_shape_errors():
    s = StreamResampler(44100, 24000, 1)
    y = s.process(np.zeros(4410, np.float32))
    assert y.ndim == 1 and y.shape[0] == s.expected_total(4410)
    st = StreamResampler(44100, 24000, 2)
    with pytest.raises(AudioError, match=r"\(2, n\)"):
        st.process(np.zeros((100, 2), np.float32))
    with pytest.raises(AudioError, match="quality"):
        StreamResampler(44100, 24000, 2, quality="ultra")
