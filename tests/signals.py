"""Test signals made on the spot."""
from __future__ import annotations

import numpy as np


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
