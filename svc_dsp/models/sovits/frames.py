"""Frame-rate feature helpers of so-vits-svc: unit stretching (spec §3.3) and volume (§3.5)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def stretch_units(units: np.ndarray, n_frames: int, mode: str) -> np.ndarray:
    """units (T_u, D) at 50/s -> (n_frames, D). mode "nearest"/"linear" (torch interpolate) or
    "left" (the 4.0 repeat algorithm: advance one unit whenever frame i passes the next boundary)."""
    t_u = units.shape[0]
    if n_frames <= 0 or t_u == 0:
        return np.zeros((max(n_frames, 0), units.shape[1]), dtype=np.float32)
    if mode == "left":
        bounds = (torch.arange(t_u + 1) * n_frames / t_u).numpy()  # float32, as so-vits computes it
        idx = np.empty(n_frames, dtype=np.int64)
        pos = 0
        for i in range(n_frames):
            if not i < bounds[pos + 1]:
                pos = min(pos + 1, t_u - 1)
            idx[i] = pos
        return np.ascontiguousarray(units[idx], dtype=np.float32)
    c = torch.from_numpy(np.ascontiguousarray(units.T, dtype=np.float32))[None]
    out = F.interpolate(c, size=n_frames, mode=mode)
    return out[0].T.contiguous().numpy()


def volume(audio: np.ndarray, hop: int) -> np.ndarray:
    """RMS per so-vits frame (4.1-Stable Volume_Extractor): frame k centred on sample k*hop,
    N // hop frames, reflect padding hop//2 left and (hop+1)//2 right of the squared signal."""
    n = audio.shape[0] // hop
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    a2 = torch.from_numpy(np.asarray(audio, dtype=np.float32)) ** 2
    a2 = F.pad(a2[None, None], (hop // 2, (hop + 1) // 2), mode="reflect")[0, 0]
    frames = a2[: n * hop].reshape(n, hop)
    return torch.sqrt(frames.mean(dim=1)).numpy()
