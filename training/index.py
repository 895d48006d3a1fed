"""``svc-host train index MODEL_DIR PREP_DIR``: the feature-retrieval index of a trained voice.

Reads the content units that ``train features`` extracted for each speaker (``PREP_DIR/features/
<speaker>/*.npz``), keeps at most ``max_frames`` per speaker (evenly drawn, seeded) and adds
``index.safetensors`` to the model folder (listed in its SHA256SUMS). The units must come from the
encoder the voice was trained with (same sha256). The engine uses it through ``index_ratio``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from svc_dsp.errors import TrainingError


def build_index(model_dir: str | os.PathLike, prep_dir: str | os.PathLike, *, max_frames: int = 20000,
                seed: int = 0, overwrite: bool = False) -> tuple[Path, list[str]]:
    """Write ``model_dir/index.safetensors``; returns (path, notes). Speakers are matched by name."""
    from svc_dsp.models.catalog import load_model
    from svc_dsp.models.folder import read_config
    from svc_dsp.models.retrieval import build_banks, write_index
    from training.features import read_features_meta

    model_dir, prep_dir = Path(model_dir), Path(prep_dir)
    if max_frames < 16:
        raise TrainingError(f"--max-frames {max_frames}; give at least 16 frames per speaker")
    model = load_model(model_dir)
    want = (read_config(model_dir).get("content_encoder") or {}).get("sha256")
    meta = read_features_meta(prep_dir)
    got = (meta.get("encoder") or {}).get("sha256")
    if want and got != want:
        raise TrainingError(f"'{prep_dir}' holds units of encoder sha256 {str(got)[:12]}..., voice '{model.name}' was "
                            f"trained with {want[:12]}...; index the features the voice was trained on")
    units: dict[str, list[np.ndarray]] = {}
    notes = []
    for spk in model.speakers:
        files = sorted((prep_dir / "features" / spk).glob("*.npz"))
        arrays = []
        for f in files:
            with np.load(f) as z:
                if "units" in z:
                    arrays.append(z["units"])
        if arrays and sum(len(a) for a in arrays):
            units[spk] = arrays
        else:
            notes.append(f"speaker '{spk}': no extracted units in '{prep_dir / 'features' / spk}'; not indexed")
    if not units:
        raise TrainingError(f"'{prep_dir}/features' has units for none of voice '{model.name}''s speakers "
                            f"({', '.join(model.speakers)}); run 'svc-host train features' on its prepared data")
    banks = build_banks(units, max_frames=max_frames, seed=seed)
    for spk, b in banks.items():
        notes.append(f"speaker '{spk}': {b.shape[0]} frames of {b.shape[1]}-dim units")
    path = write_index(model_dir, banks, {"encoder_sha256": str(got), "max_frames": str(max_frames),
                                          "seed": str(seed)}, overwrite=overwrite)
    return path, notes
