"""Benchmark inputs made on the spot: a sung-like vocal with phrases, vibrato and breaths."""
from __future__ import annotations

import numpy as np


def vocal(sample_rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """float32 (N,): phrases of notes (A3..E5) with vibrato, consonant noise bursts, rests."""
    rng = np.random.default_rng(seed)
    n = int(sample_rate * seconds)
    f0 = np.zeros(n)
    env = np.zeros(n)
    pos = 0
    while pos < n:
        phrase = int(sample_rate * rng.uniform(2.0, 5.0))
        rest = int(sample_rate * rng.uniform(0.3, 1.0))
        p = pos
        while p < min(n, pos + phrase):
            note = int(sample_rate * rng.uniform(0.2, 0.8))
            midi = rng.integers(57, 77)
            e = min(n, p + note)
            f0[p:e] = 440.0 * 2 ** ((midi - 69) / 12)
            env[p:e] = 1.0
            p = e
        pos = min(n, pos + phrase) + rest
    t = np.arange(n) / sample_rate
    f = f0 * 2 ** (0.4 * np.sin(2 * np.pi * 5.5 * t) / 12)
    ph = 2 * np.pi * np.cumsum(f) / sample_rate
    k = np.arange(1, 16)[:, None]
    voiced = (np.sin(k * ph[None, :]) / k ** 1.2).sum(0) * (f[None, :] * k < sample_rate / 2.2).any(0)
    kernel = np.hanning(int(0.03 * sample_rate))
    env = np.convolve(env, kernel / kernel.sum(), mode="same")
    noise = rng.standard_normal(n) * (np.abs(np.diff(env, prepend=0)) * 200).clip(0, 1)
    x = 0.25 * voiced * env + 0.05 * noise + 1e-4 * rng.standard_normal(n)
    return x.astype(np.float32)
