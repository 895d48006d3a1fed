"""Fixtures for the so-vits tests: a catalog root with stand-in ONNX encoders (vec768l12, vec256l9)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def sovits_catalog(tmp_path_factory) -> Path:
    from host_bridge.importers.encoder import import_encoder
    from tests.sovits.builders import export_tiny_encoder

    root = tmp_path_factory.mktemp("catalog")
    src = tmp_path_factory.mktemp("onnx")
    for layout, dim in (("vec768l12", 768), ("vec256l9", 256)):
        import_encoder(export_tiny_encoder(src / f"{layout}.onnx", dim), root / "encoders" / layout, layout=layout)
    old = os.environ.get("SVC_HOST_PATH")
    os.environ["SVC_HOST_PATH"] = str(root)
    yield root
    if old is None:
        os.environ.pop("SVC_HOST_PATH", None)
    else:
        os.environ["SVC_HOST_PATH"] = old


@pytest.fixture(scope="session")
def voice_audio() -> tuple[np.ndarray, int]:
    """1.5 s of a sung-like tone with vibrato and a short pause, 44.1 kHz."""
    sr = 44100
    t = np.arange(int(1.5 * sr)) / sr
    f = 220.0 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    ph = 2 * np.pi * np.cumsum(f) / sr
    x = 0.3 * (np.sin(ph) + 0.4 * np.sin(2 * ph) + 0.2 * np.sin(3 * ph))
    x[int(0.7 * sr):int(0.8 * sr)] *= 0.0
    return x.astype(np.float32), sr
