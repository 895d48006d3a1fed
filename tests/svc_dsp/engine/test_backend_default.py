"""The streaming engine's default backend: the fastest this install can run for the model."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from svc_dsp.engine.streaming import StreamingConverter, resolve_backend
from svc_dsp.errors import ParameterError


def test_auto_picks_onnx_for_the_hpn_family_when_onnxruntime_is_installed(random_model):
    pytest.importorskip("onnxruntime")
    sc = StreamingConverter(random_model, 48000, 256)
    assert sc.backend == "onnx" and resolve_backend(random_model) == "onnx"
    y = sc.process(np.zeros(256, np.float32))
    assert y.shape == (256,) and np.isfinite(y).all()
    assert StreamingConverter(random_model, 48000, 256, backend="torch").backend == "torch"  # told otherwise


def test_auto_falls_back_to_numpy_then_torch(random_model, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert resolve_backend(random_model, "auto") == "numpy"  # onnxruntime not installed
    sc = StreamingConverter(random_model, 48000, 256)
    assert sc.backend == "numpy" and sc.process(np.zeros(256, np.float32)).shape == (256,)
    monkeypatch.undo()

    class Other:
        family, regime = "sovits", "windowed"

    assert resolve_backend(Other(), "auto") == "torch"  # no ONNX streaming runtime for the family


def test_unknown_backend_is_refused_with_the_choices(random_model):
    with pytest.raises(ParameterError, match="backend 'cuda'; allowed: 'auto', 'torch', 'onnx'"):
        StreamingConverter(random_model, 48000, 256, backend="cuda")
