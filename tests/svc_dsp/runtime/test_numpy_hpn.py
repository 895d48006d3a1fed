"""The numpy runtime of the stateful family: same numbers as the torch model (hop by hop, in
chunks, every architecture option it folds), streaming equals offline, no allocation growth."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from svc_dsp.engine.converter import Converter
from svc_dsp.engine.streaming import StreamingConverter
from svc_dsp.models.encoders.causal_mel import CausalMelEncoder
from svc_dsp.models.hpn import build_random
from svc_dsp.runtime.numpy_hpn import NumpyHpnModel, from_torch_state, to_torch_state
from tests.signals import sung_tone


def _hops(model, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    hop = model.hop_size
    t = np.arange(n * hop) / model.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 190 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    x[: 3 * hop] = 0.0  # silence first: the running normalisation skips frames under its floor
    f0 = np.where(rng.random(n) > 0.2, 190.0 * 2 ** (rng.normal(0, 1, n) / 12), 0.0).astype(np.float32)
    f0[5:9] = 0.0  # an unvoiced run: the oscillator holds the last voiced F0
    spk = rng.random((len(model.speakers), n)).astype(np.float32)
    return x, f0, spk / spk.sum(axis=0)


_VARIANTS = {
    "default": dict(),
    "distribution": dict(amplitudes="distribution"),
    # softmax units and an encoder delay of 2 (the loudness delay line is in use)
    "softmax-delay2": dict(encoder_kw=dict(output="softmax", n_classes=64, delay_frames=2)),
}


def _model(variant: str):
    kw = dict(_VARIANTS[variant])
    enc_kw = kw.pop("encoder_kw", None)
    enc = CausalMelEncoder.random(5, **enc_kw) if enc_kw else None
    return build_random(seed=4, encoder=enc, **kw)


@pytest.mark.parametrize("variant", sorted(_VARIANTS))
def test_numpy_runtime_equals_torch_hop_by_hop_and_in_chunks(variant):
    m = _model(variant)
    nm = NumpyHpnModel(m)
    n, hop = 60, m.hop_size
    x, f0, spk = _hops(m, n)
    ref, ref_state = m.process_hops(x, f0, spk, m.init_state())
    assert np.abs(ref).max() > 1e-3  # the test signal makes sound
    st = nm.init_state()
    out = []
    for i in range(n):  # one hop per step, as the live engine runs it
        y, st = nm.process_hops(x[i * hop:(i + 1) * hop], f0[i:i + 1], spk[:, i:i + 1], st)
        out.append(y)
    assert np.max(np.abs(np.concatenate(out) - ref)) <= 1e-4
    st, out, i = nm.init_state(), [], 0
    for k in (1, 7, 2, 1, 30, 19):  # uneven chunks
        y, st = nm.process_hops(x[i * hop:(i + k) * hop], f0[i:i + k], spk[:, i:i + k], st)
        out.append(y)
        i += k
    assert i == n and np.max(np.abs(np.concatenate(out) - ref)) <= 1e-4
    # the carried state converts back to the torch layout and continues there alike
    x2, f02, spk2 = _hops(m, 10, seed=2)
    y_t, _ = m.process_hops(x2, f02, spk2, ref_state)
    y_n, _ = m.process_hops(x2, f02, spk2, to_torch_state(nm, st[0]))
    assert np.max(np.abs(y_t - y_n)) <= 1e-4


def test_torch_state_is_accepted_and_streams_are_independent(random_model):
    nm = NumpyHpnModel(random_model)
    hop = random_model.hop_size
    x, f0, spk = _hops(random_model, 12, seed=1)
    a = [s for s in random_model.init_state()]  # a torch state list
    b = nm.init_state()
    ya, yb = [], []
    for i in range(12):
        y, a = nm.process_hops(x[i * hop:(i + 1) * hop], f0[i:i + 1], spk[:, i], a)
        ya.append(y)
        y, b = nm.process_hops(x[i * hop:(i + 1) * hop] * 0.5, f0[i:i + 1], spk[:, i], b)
        yb.append(y)
    ref, _ = random_model.process_hops(x, f0, spk, random_model.init_state())
    assert np.max(np.abs(np.concatenate(ya) - ref)) <= 1e-4
    assert not np.allclose(np.concatenate(ya), np.concatenate(yb))
    st = from_torch_state(nm, random_model.init_state())
    assert st.pos == 0 and st.phase == 0.0 and all(c.shape[0] == conv.pad for c, conv in
                                                   zip(st.enc[1:], nm.enc_stack.convs))


@pytest.mark.parametrize("block", [64, 256, 333])
def test_numpy_streaming_one_hop_per_step_equals_offline(random_model, block):
    sr = 48000
    x = sung_tone(sr, 0.4)
    off = Converter(random_model).convert(x, sr)
    sc = StreamingConverter(random_model, sr, block, backend="numpy")
    assert sc.hops_per_step == 1
    L = sc.latency_samples
    xx = np.concatenate([x, np.zeros(L, np.float32)])
    y = np.concatenate([sc.process(xx[i:i + block]) for i in range(0, xx.shape[0], block)])[L:]
    assert sc.xruns == 0 and np.max(np.abs(y - off)) <= 1e-4


def test_offline_synthesize_equals_torch(random_model):
    nm = NumpyHpnModel(random_model)
    sr = random_model.sample_rate
    x = sung_tone(sr, 0.5)
    n = -(-x.shape[0] // random_model.hop_size)
    f0 = np.full(n, 220.0, np.float32)
    spk = random_model.speaker_weights()
    ref = random_model.synthesize(x, f0, spk)
    assert np.max(np.abs(nm.synthesize(x, f0, spk, chunk_hops=37) - ref)) <= 1e-4


def test_no_allocation_growth_in_process_after_warm_up(random_model):
    sr, block = 48000, 256
    sc = StreamingConverter(random_model, sr, block, backend="numpy")
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


def test_weight_matrices_are_every_matrix_a_hop_multiplies_by(random_model):
    nm = NumpyHpnModel(random_model)
    mats = nm.weight_matrices()
    assert all(w.dtype == np.float32 and w.ndim == 2 and w.flags.c_contiguous for w in mats)
    net = random_model.net
    enc = net.encoder
    blocks = [*enc.stack.blocks, *net.stack.blocks]
    expected = (enc.frontend.fb.numel() + enc.conv_in.weight.numel() + enc.proj.weight.numel()
                + sum(b.conv.weight.numel() + b.out.weight.numel() for b in blocks)
                + net.spk_table.shape[0] * net.spk_proj.weight.shape[0]  # table and projection folded
                + net.conv_in.weight.numel() + net.head.weight.numel())
    assert sum(w.size for w in mats) == expected
