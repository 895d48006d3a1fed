"""Shared fixtures: small random-weight models written as real model folders, and signals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """A random 'hpn' model (speakers alto, tenor) with its encoder bundled: loads like a real one."""
    from svc_dsp.models.hpn import build_random, save_model_folder

    d = tmp_path_factory.mktemp("models") / "random-hpn"
    save_model_folder(build_random(seed=3), d)
    return d


@pytest.fixture(scope="session")
def random_model(random_model_dir):
    from svc_dsp.models.catalog import load_model

    return load_model(random_model_dir)


def sung_tone(sr: int, seconds: float, f0: float = 220.0, seed: int = 0) -> np.ndarray:
    """A vibrato tone with harmonics, breath noise and a gap of silence: float32 (N,)."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f = f0 * 2 ** (0.3 * np.sin(2 * np.pi * 5.5 * t) / 12)
    ph = 2 * np.pi * np.cumsum(f) / sr
    x = sum((0.5 / k) * np.sin(k * ph) for k in range(1, 8))
    env = np.clip(np.sin(np.pi * t / max(seconds, 1e-3)) * 3, 0, 1)
    gap = (t > 0.45 * seconds) & (t < 0.55 * seconds)
    x = 0.3 * x * env * (~gap) + 0.003 * rng.standard_normal(n)
    return x.astype(np.float32)
