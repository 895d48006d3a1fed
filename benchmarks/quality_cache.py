"""Measurements of ``python -m benchmarks quality`` kept on disk (``--cache DIR``), so a later run
that compares a new model with one already measured computes only the new one.

Inputs are deterministic (seeded synthesis and re-singing), so an input is keyed by voice, style,
sentence index and text; a model's measurements on it by that key plus a digest of the model folder
(its SHA256SUMS and model.json, which name every file a loader reads), the transpose and the
recognisers that judged it. Entries are written atomically (temp + rename); a damaged entry is
measured again.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def model_digest(name: str) -> str:
    """A digest of the model folder behind a catalog name or path (changes when any listed file does)."""
    from svc_dsp.models.catalog import find_in_catalog

    text = str(name)
    is_path = "/" in text or "\\" in text or text.startswith((".", "~")) or os.path.isabs(text)
    folder = Path(text).expanduser() if is_path else find_in_catalog("models", text)
    h = hashlib.sha256()
    listed = [folder / "SHA256SUMS", folder / "model.json"]
    files = [p for p in listed if p.is_file()] or sorted(p for p in folder.rglob("*") if p.is_file())
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:24]


class Cache:
    """Input audio + source measurements, and per-model output measurements, under ``root``
    (``root=None``: nothing is kept)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        if root is not None:
            root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(*parts: Any) -> str:
        return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:32]

    def _write(self, path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)

    def get(self, key: str) -> dict[str, Any] | None:
        """The measurements stored under ``key`` (with ``audio`` when an input was stored), or None."""
        if self.root is None or not (self.root / f"{key}.json").is_file():
            return None
        try:
            out = json.loads((self.root / f"{key}.json").read_text())
            if (self.root / f"{key}.npy").is_file():
                out["audio"] = np.load(self.root / f"{key}.npy")
            return out
        except (OSError, ValueError):
            return None

    def put(self, key: str, values: dict[str, Any], audio: np.ndarray | None = None) -> None:
        """Store ``values`` (JSON-able) and optionally ``audio`` (float32 (N,)) under ``key``."""
        if self.root is None:
            return
        if audio is not None:
            import io

            buf = io.BytesIO()
            np.save(buf, np.asarray(audio, np.float32))
            self._write(self.root / f"{key}.npy", buf.getvalue())
        self._write(self.root / f"{key}.json", json.dumps(values).encode())
