"""The onnxruntime backend of the stateful family: bound buffers, same numbers as torch,
no allocation growth per step."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from svc_dsp.engine.converter import Converter  # noqa: E402
from svc_dsp.engine.streaming import StreamingConverter  # noqa: E402
from svc_dsp.runtime.onnx_hpn import OnnxHpnModel  # noqa: E402
from tests.signals import sung_tone  # noqa: E402


def _hops(model, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hop = model.hop_size
    t = np.arange(n * hop) / model.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 190 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    f0 = np.where(rng.random(n) > 0.2, 190.0 * 2 ** (rng.normal(0, 1, n) / 12), 0.0).astype(np.float32)
    spk = rng.random((len(model.speakers), n)).astype(np.float32)
    return x, f0, spk / spk.sum(axis=0)


def test_bound_runtime_equals_torch_hop_by_hop_and_in_groups(random_model):
    om = OnnxHpnModel.from_model(random_model, hops=2)
    n, hop = 41, random_model.hop_size
    x, f0, spk = _hops(random_model, n)
    ref, _ = random_model.process_hops(x, f0, spk, random_model.init_state())
    st = om.init_state()
    out, i = [], 0
    for k in (1, 1, 3, 2, 1, 5, 1, 1, 8, 2, 1, 1, 4, 1, 1, 1, 7):  # 1-hop and 2-hop graphs interleaved
        y, st = om.process_hops(x[i * hop:(i + k) * hop], f0[i:i + k], spk[:, i:i + k], st)
        out.append(y)
        i += k
    assert i == n
    assert np.max(np.abs(np.concatenate(out) - ref)) <= 1e-4
    # a state given as plain arrays (the torch model's layout) works too
    y, _ = om.process_hops(x[:hop], f0[:1], spk[:, 0], [s.numpy() for s in random_model.init_state()])
    assert np.max(np.abs(y - ref[:hop])) <= 1e-4


def test_two_streams_keep_their_own_state(random_model):
    om = OnnxHpnModel.from_model(random_model)
    hop = random_model.hop_size
    x, f0, spk = _hops(random_model, 12, seed=1)
    a, b = om.init_state(), om.init_state()
    ya, yb = [], []
    for i in range(12):
        y, a = om.process_hops(x[i * hop:(i + 1) * hop], f0[i:i + 1], spk[:, i], a)
        ya.append(y)
        y, b = om.process_hops(x[i * hop:(i + 1) * hop] * 0.5, f0[i:i + 1], spk[:, i], b)
        yb.append(y)
    ref_a, _ = om.process_hops(x, f0, spk, om.init_state())
    assert np.max(np.abs(np.concatenate(ya) - ref_a)) <= 1e-6
    assert not np.allclose(np.concatenate(ya), np.concatenate(yb))


@pytest.mark.parametrize("block", [64, 256, 333])
def test_default_streaming_one_hop_per_step_equals_offline(random_model, block):
    sr = 48000
    x = sung_tone(sr, 0.4)
    off = Converter(random_model).convert(x, sr)
    sc = StreamingConverter(random_model, sr, block, backend="onnx")
    assert sc.hops_per_step == 1
    L = sc.latency_samples
    xx = np.concatenate([x, np.zeros(L, np.float32)])
    y = np.concatenate([sc.process(xx[i:i + block]) for i in range(0, xx.shape[0], block)])[L:]
    assert sc.xruns == 0 and np.max(np.abs(y - off)) <= 1e-4


def test_no_allocation_growth_in_process_after_warm_up(random_model):
    sr, block = 48000, 256
    sc = StreamingConverter(random_model, sr, block, backend="onnx")
    x = sung_tone(sr, 2.0)
    blocks = [x[i:i + block] for i in range(0, x.shape[0] - block + 1, block)]
    for b in blocks[:100]:  # warm-up: caches, first allocations
        sc.process(b)
    tracemalloc.start()
    try:
        for b in blocks[100:150]:
            sc.process(b)
        first, _ = tracemalloc.get_traced_memory()
        for _ in range(3):
            for b in blocks[150:]:
                sc.process(b)
        last, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last - first < 64 * 1024, f"traced memory grew by {last - first} bytes over {3 * len(blocks[150:])} blocks"
