"""Stage 4: a training checkpoint -> a checked model folder the engine loads.

Only the decoder weights go into ``model.safetensors`` (optimizer and RNG state are dropped).
The content encoder is referenced by catalog name + sha256 when it lives in a catalog root
(``<root>/encoders/<name>/``), otherwise — or with ``bundle_encoder`` — it is copied into an
``encoder/`` sub-folder. The folder is written under a temporary name, loaded back through
:func:`svc_dsp.models.catalog.load_model`, and its ``synthesize`` output is compared with the
training model's on a test signal; only a folder that matches within ``tolerance`` is moved to
``out_folder``.
"""
from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.fileops import replace_dir
from svc_dsp.errors import TrainingError

TOLERANCE = 1e-5


@dataclass
class ExportReport:
    """Where the model went, which checkpoint it came from, and the verified max abs difference."""

    folder: str
    step: int
    checkpoint: str
    encoder: str
    max_abs_diff: float
    size_bytes: int


def _pick_checkpoint(run_dir_or_checkpoint: Path) -> Any:
    from training.checkpoints import latest_checkpoint, load_checkpoint

    p = Path(run_dir_or_checkpoint)
    if (p / "state.json").is_file():
        return load_checkpoint(p)
    ck = latest_checkpoint(p, quarantine=False)
    if ck is None:
        raise TrainingError(f"'{p}' is neither a checkpoint folder nor a run folder with checkpoints; pass "
                            f"RUN_DIR or RUN_DIR/checkpoints/step_NNNNNN")
    return ck


def _catalog_name_of(folder: Path) -> str | None:
    """The catalog name under which ``folder`` is found (same folder), else None."""
    from svc_dsp.errors import CatalogError
    from svc_dsp.models.catalog import find_in_catalog

    try:
        found = find_in_catalog("encoders", folder.name)
    except CatalogError:
        return None
    return folder.name if found.resolve() == folder.resolve() else None


def test_signal(sample_rate: int, seconds: float = 1.5) -> tuple[np.ndarray, np.ndarray, int]:
    """A harmonic glide with vibrato and a pause: (audio (N,), f0 on the frame grid, hop-less length)."""
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 180.0 * 2.0 ** (t / seconds) * 2.0 ** (0.25 / 12 * np.sin(2 * math.pi * 5.0 * t))
    ph = 2 * math.pi * np.cumsum(f0) / sample_rate
    x = sum(np.sin(k * ph) / k for k in range(1, 12)) * 0.2
    x[int(0.6 * n):int(0.7 * n)] = 0.0
    return x.astype(np.float32), f0, n


def export(run_dir_or_checkpoint: Path, out_folder: Path, *, name: str | None = None, bundle_encoder: bool = False,
           overwrite: bool = False, tolerance: float = TOLERANCE) -> ExportReport:
    """Write the model folder ``out_folder`` from a run's newest good checkpoint (or a given one).

    ``name``: model name in model.json (default: ``out_folder``'s name). Refuses (TrainingError)
    when the reloaded folder's ``synthesize`` differs from the training model's by more than
    ``tolerance`` on the test signal, and leaves ``out_folder`` untouched in that case.
    """
    from svc_dsp.models.encoders.registry import load_content_encoder
    from svc_dsp.models.catalog import load_model
    from svc_dsp.models.folder import sha256_file, write_model_folder
    from training.features import read_features_meta
    from training.model_setup import build_model, provenance

    out_folder = Path(out_folder)
    if out_folder.exists() and not overwrite:
        raise TrainingError(f"'{out_folder}' already exists; pass --overwrite or choose another folder")
    ck = _pick_checkpoint(Path(run_dir_or_checkpoint))
    cfg = dict(ck.state["model_config"])
    tcfg = ck.state.get("train_config", {})
    prep_dir = Path(tcfg.get("prep_dir", ""))
    feats_meta = read_features_meta(prep_dir)
    enc_folder = Path(feats_meta["encoder"]["path"])
    if not enc_folder.is_dir():
        raise TrainingError(f"content encoder folder '{enc_folder}' used for training is gone; restore it to export")
    encoder = load_content_encoder(enc_folder)
    enc_ref = dict(cfg["content_encoder"])
    weights_file = sorted(enc_folder.glob("*.safetensors"))[0]
    if sha256_file(weights_file) != enc_ref["sha256"]:
        raise TrainingError(f"encoder '{enc_folder}' changed since training; export with the encoder the model "
                            f"was trained with")
    catalog_name = None if bundle_encoder else _catalog_name_of(enc_folder)
    if catalog_name:
        enc_ref = {"kind": enc_ref["kind"], "name": catalog_name, "dim": enc_ref["dim"], "sha256": enc_ref["sha256"]}
    else:
        enc_ref = {"kind": enc_ref["kind"], "folder": "encoder", "name": enc_ref.get("name"), "dim": enc_ref["dim"],
                   "sha256": enc_ref["sha256"]}
    cfg["name"] = name or out_folder.name
    cfg["content_encoder"] = enc_ref
    from training.prepare import read_prepared

    cfg["training"] = provenance(_Cfg(tcfg), read_prepared(prep_dir), feats_meta, ck.step,
                                 ck.state.get("losses", {}))
    trained = build_model(cfg, encoder, ck.model)
    decoder = trained.decoder_tensors()

    out_folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_folder.name}.", suffix=".export", dir=out_folder.parent))
    tmp = staging / out_folder.name
    try:
        write_model_folder(tmp, cfg, {"model.safetensors": decoder})
        if not catalog_name:
            _bundle(enc_folder, tmp)
        loaded = load_model(tmp)
        audio, f0_curve, n = test_signal(trained.sample_rate)
        hop = trained.hop_size
        f0 = f0_curve[np.minimum(np.arange(-(-n // hop)) * hop + hop, n - 1)].astype(np.float32)
        f0[int(0.6 * len(f0)):int(0.7 * len(f0))] = 0.0
        worst = 0.0
        for spk in _speaker_cases(trained):
            a, b = _render(trained, audio, f0, spk), _render(loaded, audio, f0, spk)
            if not (np.isfinite(a).all() and np.isfinite(b).all()):
                raise TrainingError("the exported model produces non-finite audio on the test signal; not exported")
            worst = max(worst, float(np.max(np.abs(a - b))))
        if worst > tolerance:
            raise TrainingError(f"the exported folder's output differs from the training model's by {worst:.3g} "
                                f"(allowed {tolerance:g}); not exported")
        replace_dir(tmp, out_folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _normalise_permissions(out_folder)
    size = sum(p.stat().st_size for p in out_folder.rglob("*") if p.is_file())
    return ExportReport(str(out_folder), ck.step, str(ck.path), catalog_name or "bundled in encoder/", worst, size)


def _render(model: Any, audio: np.ndarray, f0: np.ndarray, spk: np.ndarray) -> np.ndarray:
    """The model's offline output on the test signal (stateful: synthesize; windowed: one window)."""
    if model.regime == "windowed":
        return model.convert_window(audio, f0, spk)
    return model.synthesize(audio, f0, spk)


class _Cfg:
    """Attribute view of a saved train-config dict (for :func:`provenance`)."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.prep_dir = d.get("prep_dir", "")
        self.batch_size = d.get("batch_size")
        self.segment_seconds = d.get("segment_seconds")
        self.learning_rate = d.get("learning_rate")
        self.base_model = d.get("base_model")


def _speaker_cases(model: Any) -> list[np.ndarray]:
    cases = [model.speaker_weights(s) for s in model.speakers]
    if len(model.speakers) > 1:
        cases.append(np.full(len(model.speakers), 1.0 / len(model.speakers), np.float32))
    return cases[:3]


def _bundle(enc_folder: Path, model_folder: Path) -> None:
    """Copy the encoder folder into ``model_folder/encoder`` and add its files to the manifest."""
    from svc_dsp.models.folder import MANIFEST_NAME, sha256_file

    dst = model_folder / "encoder"
    shutil.copytree(enc_folder, dst)
    lines = (model_folder / MANIFEST_NAME).read_text(encoding="utf-8").splitlines()
    for p in sorted(dst.iterdir()):
        if p.is_file():
            lines.append(f"{sha256_file(p)}  encoder/{p.name}")
    (model_folder / MANIFEST_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _normalise_permissions(folder: Path) -> None:
    """Temporary folders are created private (0700); give the result the usual umask modes."""
    import os

    mask = os.umask(0)
    os.umask(mask)
    for p in [folder, *folder.rglob("*")]:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)
