"""WORLD's offline F0 trackers through pyworld: "harvest" (robust) and "dio" (fast, refined by stonemask).

Grid mapping: pyworld frame k is centred on sample k * hop when frame_period = 1000 * hop /
sample_rate ms, so our frame j (around sample (j + 1) * hop) is WORLD frame j + 1. The audio is
zero-padded past its end (one extra hop beyond the grid) so that WORLD has a frame for every one
of ours. Both read the whole signal: ``streaming = False``.
"""
from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np

from svc_dsp.features.f0 import F0Tracker, check_audio, check_f0_range, check_grid, register_f0_tracker

__all__ = ["DioTracker", "HarvestTracker", "load_pyworld"]


def load_pyworld() -> ModuleType:
    """Import pyworld lazily: it pulls in pkg_resources, which is slow and warns on import.
    The one place the project imports pyworld (trackers, training augmentation, recipes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources.*", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import pyworld
    return pyworld


class _WorldTracker(F0Tracker):
    streaming = False

    def track(self, audio: np.ndarray, sample_rate: int, hop: int, n_frames: int,
              f0_min: float = 50.0, f0_max: float = 1100.0) -> np.ndarray:
        sample_rate, hop, n_frames = check_grid(sample_rate, hop, n_frames)
        x = check_audio(audio)
        f0_min, f0_max = check_f0_range(f0_min, f0_max, sample_rate)
        if n_frames == 0:
            return np.zeros(0, dtype=np.float32)
        need = (n_frames + 1) * hop          # WORLD frames 0 .. n_frames, plus slack for rounding
        padded = np.zeros(need + hop, dtype=np.float64)
        padded[:min(need, x.shape[0])] = x[:need]
        f0 = self._world_f0(padded, sample_rate, 1000.0 * hop / sample_rate, f0_min, f0_max)
        out = np.zeros(n_frames, dtype=np.float32)
        got = f0[1:n_frames + 1]
        out[:got.shape[0]] = got
        out[~np.isfinite(out) | (out < 0)] = 0.0
        return out

    def _world_f0(self, x: np.ndarray, fs: int, frame_period: float, f0_min: float, f0_max: float) -> np.ndarray:
        raise NotImplementedError


@register_f0_tracker
class HarvestTracker(_WorldTracker):
    """WORLD Harvest: robust, especially on low voices; slow (offline only)."""

    name = "harvest"

    def _world_f0(self, x: np.ndarray, fs: int, frame_period: float, f0_min: float, f0_max: float) -> np.ndarray:
        pw = load_pyworld()
        f0, _ = pw.harvest(x, fs, f0_floor=f0_min, f0_ceil=f0_max, frame_period=frame_period)
        return f0


@register_f0_tracker
class DioTracker(_WorldTracker):
    """WORLD DIO followed by StoneMask refinement: fast, less robust than harvest (offline only)."""

    name = "dio"

    def _world_f0(self, x: np.ndarray, fs: int, frame_period: float, f0_min: float, f0_max: float) -> np.ndarray:
        pw = load_pyworld()
        f0, t = pw.dio(x, fs, f0_floor=f0_min, f0_ceil=f0_max, frame_period=frame_period)
        return pw.stonemask(x, f0, t, fs)
