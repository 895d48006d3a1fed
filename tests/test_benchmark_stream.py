"""`python -m benchmarks stream`'s cost split: the network step is timed inside the engine and
is part of the engine's time; the weight floor reads the runtime's matrices."""
from __future__ import annotations

import numpy as np

from benchmarks.stream import hop_costs
from svc_dsp.runtime.numpy_hpn import NumpyHpnModel
from tests.signals import sung_tone


def test_hop_costs_split_the_engine_time_and_report_the_weight_floor(random_model):
    x = sung_tone(48000, 0.6).astype(np.float32)
    lines = hop_costs(random_model, 48000, x, repeats=1)
    rows = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in lines if ln.split()[0] in ("numpy", "onnx")}
    assert set(rows) == {"numpy", "onnx"}
    for engine, net, rest in rows.values():
        assert 0 < net < engine and abs(engine - net - rest) < 2e-3  # the step was timed and counted once
    mb = sum(w.nbytes for w in NumpyHpnModel(random_model).weight_matrices()) / 1e6
    assert lines[-1].startswith(f"weight floor: {mb:.2f} MB")
