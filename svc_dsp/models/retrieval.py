"""Feature retrieval (RVC's "index"): pull content frames toward the target's own training frames.

Each frame is replaced, by a share ``index_ratio``, with the weighted mean of its ``k`` nearest
neighbours (Euclidean, weights 1/d^2 as in RVC) among the speaker's own training units; with a
speaker mix, the retrieved frames of each speaker are mixed by the same weights. Plain torch k-NN
(no faiss). The index lives in the model folder as ``index.safetensors`` ({speaker name: (N, D)
float16}); it is used only when the folder's SHA256SUMS lists it (``svc-host train index`` writes both).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from svc_dsp.errors import ModelFormatError

INDEX_NAME = "index.safetensors"
K_NEIGHBOURS = 8
CHUNK = 1024  # frames per distance matrix (bounded memory)


class FeatureIndex:
    """Per-speaker unit banks. ``units[speaker]``: float32 tensor (N, D)."""

    def __init__(self, units: Mapping[str, np.ndarray | torch.Tensor], k: int = K_NEIGHBOURS) -> None:
        self.units = {s: torch.as_tensor(np.asarray(u, dtype=np.float32)) for s, u in units.items()}
        dims = {int(u.shape[1]) for u in self.units.values()}
        if len(dims) != 1 or any(u.ndim != 2 or u.shape[0] == 0 for u in self.units.values()):
            raise ModelFormatError(f"feature index: every speaker needs a non-empty (N, D) bank of one D; got "
                                   f"{ {s: tuple(u.shape) for s, u in self.units.items()} }")
        self.dim = dims.pop()
        self.k = int(k)

    def nearest_mean(self, units: torch.Tensor, speaker: str) -> torch.Tensor:
        """units (T, D) -> (T, D): each frame's inverse-square-distance mean of its k nearest in ``speaker``."""
        bank = self.units[speaker].to(units.dtype)
        k = min(self.k, bank.shape[0])
        out = []
        for i in range(0, units.shape[0], CHUNK):
            q = units[i:i + CHUNK]
            d, idx = torch.topk(torch.cdist(q, bank), k, dim=1, largest=False)
            w = 1.0 / d.clamp_min(1e-6) ** 2
            w = w / w.sum(dim=1, keepdim=True)
            out.append((w[..., None] * bank[idx]).sum(dim=1))
        return torch.cat(out) if out else units.clone()

    def apply(self, units: torch.Tensor, weights: torch.Tensor, speakers: list[str], ratio: float) -> torch.Tensor:
        """units (T, D); weights (S,) or (S, T) over ``speakers`` (the model's order) -> (T, D).

        Speakers without a bank keep their frames unchanged for their share of the mix."""
        if ratio <= 0.0 or units.shape[0] == 0:
            return units
        if units.shape[1] != self.dim:
            raise ModelFormatError(f"feature index holds {self.dim}-dim units, the encoder gives {units.shape[1]}; "
                                   f"rebuild it with 'svc-host train index'")
        w = weights.to(units.dtype)
        w = w[:, None].expand(-1, units.shape[0]) if w.ndim == 1 else w
        retrieved = torch.zeros_like(units)
        for s, name in enumerate(speakers):
            ws = w[s]
            if not bool((ws > 0).any()):
                continue
            target = self.nearest_mean(units, name) if name in self.units else units
            retrieved = retrieved + ws[:, None] * target
        total = w.sum(dim=0).clamp_min(1e-9)[:, None]
        return (1.0 - ratio) * units + ratio * retrieved / total

    def apply_np(self, units: np.ndarray, weights: np.ndarray, speakers: list[str], ratio: float) -> np.ndarray:
        """numpy face of :meth:`apply`: units (T, D) float32 -> (T, D) float32."""
        if ratio <= 0.0:
            return units
        with torch.no_grad():
            out = self.apply(torch.from_numpy(np.ascontiguousarray(units, dtype=np.float32)),
                             torch.from_numpy(np.asarray(weights, dtype=np.float32)), speakers, ratio)
        return out.numpy()


def load_index(folder: str | os.PathLike) -> FeatureIndex | None:
    """The folder's index when SHA256SUMS lists it (hashes are checked by the model loader), else None."""
    from svc_dsp.models.folder import MANIFEST_NAME, load_tensors

    folder = Path(folder)
    manifest = folder / MANIFEST_NAME
    if not (folder / INDEX_NAME).is_file() or not manifest.is_file():
        return None
    listed = {line.partition("  ")[2].strip() for line in manifest.read_text(encoding="utf-8").splitlines()}
    if INDEX_NAME not in listed:
        return None
    return FeatureIndex(load_tensors(folder / INDEX_NAME))


def write_index(folder: str | os.PathLike, banks: Mapping[str, np.ndarray], meta: Mapping[str, str],
                *, overwrite: bool = False) -> Path:
    """Add ``index.safetensors`` to a model folder and list it in SHA256SUMS (each file via temp + rename)."""
    from safetensors.numpy import save_file

    from svc_dsp.models.folder import MANIFEST_NAME, sha256_file, verify_manifest

    folder = Path(folder)
    sums = verify_manifest(folder)
    path = folder / INDEX_NAME
    if path.exists() and not overwrite:
        raise ModelFormatError(f"'{path}' exists; pass --overwrite to rebuild it")
    FeatureIndex(banks)  # proves it is usable before anything is written
    fd, tmp = tempfile.mkstemp(prefix=".index.", suffix=".partial", dir=folder)
    os.close(fd)
    try:
        save_file({s: np.ascontiguousarray(b, dtype=np.float16) for s, b in banks.items()}, tmp,
                  metadata={k: str(v) for k, v in meta.items()})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    sums[INDEX_NAME] = sha256_file(path)
    fd, tmp = tempfile.mkstemp(prefix=".sums.", suffix=".partial", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))
    os.replace(tmp, folder / MANIFEST_NAME)
    return path


def build_banks(units_by_speaker: Mapping[str, list[np.ndarray]], max_frames: int = 20000,
                seed: int = 0) -> dict[str, np.ndarray]:
    """Concatenate each speaker's (T_i, D) unit arrays; keep at most ``max_frames`` (evenly drawn, seeded)."""
    rng = np.random.default_rng(seed)
    out = {}
    for s, arrays in units_by_speaker.items():
        u = np.concatenate([np.asarray(a, dtype=np.float32) for a in arrays if len(a)], axis=0)
        if u.shape[0] > max_frames:
            u = u[np.sort(rng.choice(u.shape[0], max_frames, replace=False))]
        out[s] = u
    return out
