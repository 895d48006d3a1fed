"""StreamingConverter: streaming equals offline, constant latency, smooth parameters, RT safety."""
from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

from svc_dsp.engine.converter import Converter
from svc_dsp.engine.streaming import StreamingConverter
from tests.signals import sung_tone


def _run(sc, x, sizes, rng=None):
    L = sc.latency_samples
    xx = np.concatenate([x, np.zeros(x.shape[:-1] + (L,), np.float32)], axis=-1)
    out, s, i = [], 0, 0
    n = xx.shape[-1]
    while s < n:
        k = int(rng.integers(1, sc.max_block_size + 1)) if sizes is None else sizes[i % len(sizes)]
        k = min(k, n - s)
        out.append(sc.process(xx[..., s:s + k]))
        s += k
        i += 1
    return np.concatenate(out, axis=-1)[..., L:]


@pytest.mark.parametrize("block", [1, 32, 64, 100, 256, 511, 4096, None])
def test_stream_equals_offline_across_block_sizes(random_model, block):
    sr = 48000
    x = sung_tone(sr, 0.25 if block == 1 else 0.6)
    off = Converter(random_model).convert(x, sr)
    sc = StreamingConverter(random_model, sr, 4096)
    y = _run(sc, x, None if block is None else [block], np.random.default_rng(1))
    assert sc.xruns == 0
    assert np.abs(y - off).max() < 1e-4


@pytest.mark.parametrize("sr", [22050, 44100, 88200, 96000, 192000])
def test_stream_equals_offline_across_rates(random_model, sr):
    x = sung_tone(sr, 0.4)
    off = Converter(random_model).convert(x, sr)
    y = _run(StreamingConverter(random_model, sr, 1024), x, [1, 300, 77, 1024])
    assert np.abs(y - off).max() < 1e-4


def test_stereo_stream_equals_offline(random_model):
    sr = 44100
    x = np.stack([sung_tone(sr, 0.4), sung_tone(sr, 0.4, seed=5) * 0.5])
    c = Converter(random_model, mix=0.7)
    off = c.convert(x, sr)
    y = _run(StreamingConverter(random_model, sr, 512, mix=0.7), x, [33, 512, 1])
    assert y.shape == x.shape and np.abs(y - off).max() < 1e-4


def test_latency_constant_and_measured(random_model):
    sr = 48000
    lat = {StreamingConverter(random_model, sr, b, **p).latency_samples
           for b in (64, 4096) for p in ({}, {"transpose": 12}, {"bypass": True}, {"mix": 0.2},
                                           {"loudness_match": 0.0}, {"speaker": "tenor"})}
    assert len(lat) == 1
    L = lat.pop()
    assert L / sr < 0.025  # under 25 ms at 48 kHz
    # the dry path (mix 0) is the input delayed by exactly the reported latency
    sc = StreamingConverter(random_model, sr, 256, mix=0.0)
    imp = np.zeros(4000, np.float32)
    imp[100] = 1.0
    y = np.concatenate([sc.process(imp[i:i + 256]) for i in range(0, 4000, 256)])
    assert int(np.argmax(np.abs(y))) == 100 + L
    # the wet path: a note onset comes out latency_samples later than it went in
    sc = StreamingConverter(random_model, sr, 512)
    x = np.zeros(sr, np.float32)
    t = np.arange(sr // 2) / sr
    x[sr // 2:] = 0.3 * np.sin(2 * np.pi * 220 * t)
    y = np.concatenate([sc.process(x[i:i + 512]) for i in range(0, sr, 512)])
    env = np.convolve(np.abs(y), np.ones(48) / 48, mode="same")
    onset = int(np.argmax(env > 0.1 * env.max()))
    # onsets of a frame model land within about one 5 ms hop of the input onset
    assert abs(onset - (sr // 2 + L)) < 0.0075 * sr


def _hf_energy(y, sr, centre, half=0.02):
    from scipy.signal import butter, sosfilt

    hp = sosfilt(butter(4, 6000, "highpass", fs=sr, output="sos"), y)
    a, b = int((centre - half) * sr), int((centre + half) * sr)
    return float(np.sum(hp[a:b] ** 2))


@pytest.mark.parametrize("name,before,after", [("transpose", 0.0, 7.0), ("mix", 1.0, 0.2),
                                               ("output_gain_db", 0.0, -12.0), ("loudness_match", 1.0, 0.0),
                                               ("speaker", "alto", "tenor"), ("bypass", False, True)])
def test_parameter_change_mid_stream_has_no_click(random_model, name, before, after):
    sr = 48000
    x = sung_tone(sr, 1.2)
    t_change = 0.6
    sc = StreamingConverter(random_model, sr, 256, **{name: before})
    out = []
    for i in range(0, x.shape[0], 256):
        if i >= int(t_change * sr) and sc.get(name) == before:
            sc.set(name, after)
        out.append(sc.process(x[i:i + 256]))
    y = np.concatenate(out)
    static_a = _run(StreamingConverter(random_model, sr, 256, **{name: before}), x, [256])
    static_b = _run(StreamingConverter(random_model, sr, 256, **{name: after}), x, [256])
    L = sc.latency_samples / sr
    e_change = _hf_energy(y, sr, t_change + L)
    e_ref = max(_hf_energy(static_a, sr, t_change), _hf_energy(static_b, sr, t_change))
    assert e_change <= 2.0 * e_ref + 1e-6, (e_change, e_ref)


def test_control_thread_changes_while_streaming(random_model):
    sr = 44100
    sc = StreamingConverter(random_model, sr, 128)
    stop = threading.Event()

    def control():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            sc.set("transpose", float(rng.uniform(-12, 12)))
            sc.set("mix", float(rng.uniform(0, 1)))

    th = threading.Thread(target=control)
    th.start()
    try:
        x = sung_tone(sr, 0.5)
        y = np.concatenate([sc.process(x[i:i + 128]) for i in range(0, x.shape[0], 128)])
    finally:
        stop.set()
        th.join()
    assert np.isfinite(y).all()


def test_no_growing_allocations_and_no_subnormals(random_model):
    sr = 48000
    sc = StreamingConverter(random_model, sr, 64)
    rng = np.random.default_rng(0)
    blocks = [(0.1 * rng.standard_normal(64)).astype(np.float32) for _ in range(16)]
    for i in range(800):  # warm-up
        sc.process(blocks[i % 16])
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    for i in range(3000):  # 64 KiB over 3000 calls: anything that keeps one small object per call fails
        y = sc.process(blocks[i % 16])
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    growth = sum(s.size_diff for s in snap1.compare_to(snap0, "filename") if s.size_diff > 0)
    assert growth < 64 * 1024, growth
    tiny = np.finfo(np.float32).tiny
    assert not np.any((y != 0) & (np.abs(y) < tiny))


def test_reset_restarts_identically(random_model):
    sr = 44100
    x = sung_tone(sr, 0.3)
    sc = StreamingConverter(random_model, sr, 256)
    a = _run(sc, x, [256])
    sc.reset()
    b = _run(sc, x, [256])
    assert np.array_equal(a, b)


def test_onnx_backend_matches_torch(random_model):
    sr = 48000
    x = sung_tone(sr, 0.3)
    a = _run(StreamingConverter(random_model, sr, 512, backend="torch"), x, [512])
    on = StreamingConverter(random_model, sr, 512, backend="onnx")
    b = _run(on, x, [512])
    assert "CPUExecutionProvider" in on.model.providers
    assert np.abs(a - b).max() < 1e-4


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_two_hops_per_step_equals_offline_with_one_more_hop_of_latency(random_model, backend):
    sr = 48000
    x = sung_tone(sr, 0.4)
    off = Converter(random_model).convert(x, sr)
    one = StreamingConverter(random_model, sr, 512).latency_samples
    sc = StreamingConverter(random_model, sr, 512, backend=backend, hops_per_step=2)
    assert sc.latency_samples == one + 2 * random_model.hop_size  # one 5 ms hop at 24 kHz = 240 host samples
    assert sc.latency_samples / sr < 0.025
    y = _run(sc, x, [1, 100, 512, 37])
    assert sc.xruns == 0 and np.abs(y - off).max() < 1e-4
