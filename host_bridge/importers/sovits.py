"""``svc-host import sovits G_xxx.pth config.json -o MODEL_DIR``: a so-vits-svc voice -> model folder.

Every tensor name and shape is checked against what config.json implies (the first mismatch
is named); fp16/bf16 tensors are stored as float32; release files without ``enc_q.*``,
duplicated shared-flow keys, 4.0 configs and so-vits-svc-fork configs are accepted (spec §6, §7);
training-only tensors are dropped. The .pth is only opened by the subprocess worker.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.models.folder import sha256_file as _sha256
from svc_dsp.errors import ModelFormatError, WeightMismatchError
from svc_dsp.models.sovits.layout import (F0_MAX, F0_MIN, SPEECH_ENCODERS, inference_shapes, is_shared_alias,
                                          normalize_config, sovits_state_shapes, speakers_by_id)

from host_bridge.importers.worker_client import unpickle_in_subprocess


def _hint(name: str, got: tuple, want: tuple, m: dict[str, Any]) -> str:
    if name == "emb_g.weight":
        return f"config model.n_speakers is {m['n_speakers']} but the checkpoint has {got[0]} speaker rows"
    if name == "pre.weight":
        return (f"the checkpoint takes {got[1]}-dim content units, the config says ssl_dim {m['ssl_dim']} "
                f"(speech_encoder {m['speech_encoder']}); use the config.json trained with this file")
    return "use the config.json that was trained with this checkpoint"


def validate_sovits_tensors(ckpt: dict[str, np.ndarray], m: dict[str, Any], spec_channels: int,
                            where: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Check ``ckpt`` against the layout of model config ``m``; return (inference tensors float32, notes)."""
    full = sovits_state_shapes(m, spec_channels)
    notes: list[str] = []
    dropped_f0 = 0
    for name, arr in ckpt.items():
        if name not in full:
            if name.startswith("f0_decoder.") and not m["use_automatic_f0_prediction"]:
                dropped_f0 += 1
                continue
            hint = ""
            if name.startswith("module."):
                hint = " (a DataParallel 'module.' prefix; so-vits files have none)"
            elif name.startswith("emb_vol."):
                hint = " (the checkpoint has a volume embedding: set model.vol_embedding true in config.json)"
            elif ".depth_conv." in name:
                hint = " (a TINY model: set model.use_depthwise_conv true in config.json)"
            elif name.startswith("flow.wn."):
                hint = " (a shared flow: set model.flow_share_parameter true in config.json)"
            raise WeightMismatchError(f"{where}: unexpected tensor '{name}' of shape {tuple(arr.shape)}{hint}; the "
                                      f"checkpoint does not match config.json")
    for name, shape in full.items():
        if name in ckpt and tuple(ckpt[name].shape) != tuple(shape):
            raise WeightMismatchError(f"{where}: tensor '{name}' has shape {tuple(ckpt[name].shape)}, config.json "
                                      f"implies {tuple(shape)}; {_hint(name, tuple(ckpt[name].shape), shape, m)}")
    out: dict[str, np.ndarray] = {}
    for name, shape in inference_shapes(m).items():
        src = name
        if name not in ckpt and name.startswith("flow.wn."):
            alias = "flow.flows.0.enc." + name[len("flow.wn."):]
            src = alias if alias in ckpt else name
        if src not in ckpt:
            hint = ""
            if name.startswith("emb_vol."):
                hint = " (config.json has vol_embedding true; this checkpoint was trained without it)"
            elif name.startswith("f0_decoder."):
                hint = " (set model.use_automatic_f0_prediction false if the voice was trained without it)"
            raise WeightMismatchError(f"{where}: tensor '{name}' (shape {tuple(shape)}) is missing{hint}; the "
                                      f"checkpoint does not match config.json")
        out[name] = np.ascontiguousarray(ckpt[src], dtype=np.float32)
    # a shared flow saves the same tensors under every alias: they must agree
    for name in full:
        if is_shared_alias(name, m) and name in ckpt:
            base = "flow.wn." + name.split(".enc.", 1)[1]
            if not np.array_equal(np.asarray(ckpt[name], np.float32), out[base]):
                raise WeightMismatchError(f"{where}: '{name}' differs from '{base}', but config.json says the flow "
                                          f"shares one module (flow_share_parameter true); check the config")
    if any(k.startswith("enc_q.") for k in ckpt):
        notes.append("dropped the training-only posterior encoder (enc_q.*)")
    else:
        notes.append("release file without enc_q.* (fine for inference)")
    if dropped_f0:
        notes.append(f"dropped {dropped_f0} f0_decoder tensors (use_automatic_f0_prediction is false)")
    if any(a.dtype == np.float16 for a in ckpt.values()):
        notes.append("fp16 tensors stored as float32")
    return out, notes


def import_sovits(pth: str | os.PathLike, config_json: str | os.PathLike, out_dir: str | os.PathLike, *,
                  name: str | None = None, cluster: str | os.PathLike | None = None,
                  overwrite: bool = False) -> tuple[Path, list[str]]:
    """Import a so-vits-svc generator checkpoint + its config.json as a model folder.

    Returns (folder, notes). Raises WeightMismatchError naming the first bad tensor,
    PickleRefusedError if the .pth asks to run code, ModelFormatError for other problems.
    """
    from svc_dsp.models.folder import write_model_folder

    pth, config_json, out_dir = Path(pth), Path(config_json), Path(out_dir)
    try:
        raw = json.loads(config_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"'{config_json}' is not a readable JSON config ({e})") from None
    norm = normalize_config(raw, str(config_json))
    m, data = norm["model"], norm["data"]
    try:
        res = unpickle_in_subprocess(pth, select="model", what="so-vits checkpoint")
    except ModelFormatError as e:
        if "no top-level key 'model'" in str(e) and "'weight'" in str(e):
            raise ModelFormatError(f"'{pth}' looks like an RVC voice ('weight'/'config' entries); RVC models are "
                                   f"not supported by 'import sovits'") from None
        raise
    if not res.tensors:
        raise ModelFormatError(f"'{pth}': the 'model' entry holds no tensors; is this a D_*.pth or an RVC file?")
    if any(k.startswith("discriminators.") for k in res.tensors):
        raise ModelFormatError(f"'{pth}' is a discriminator checkpoint (D_*.pth); import the generator G_*.pth")
    spec_channels = int(data["filter_length"]) // 2 + 1
    tensors, notes = validate_sovits_tensors(res.tensors, m, spec_channels, f"'{pth.name}'")
    notes = norm["warnings"] + notes + (["bfloat16 tensors stored as float32"] if res.notes else [])
    speakers, ids = speakers_by_id(norm["spk"], int(m["n_speakers"]))
    enc_name, enc_dim = SPEECH_ENCODERS[norm["speech_encoder"]]
    meta = res.meta if isinstance(res.meta, dict) else {}
    cfg: dict[str, Any] = {
        "family": "sovits", "version": 1, "name": name or out_dir.name,
        "sample_rate": int(data["sampling_rate"]), "hop_size": int(data["hop_length"]),
        "speakers": speakers, "speaker_ids": ids, "f0_range": [F0_MIN, F0_MAX],
        "content_encoder": {"name": enc_name, "dim": enc_dim},
        "provenance": {"imported_from": pth.name, "sha256": _sha256(pth), "config": config_json.name,
                       "flavour": norm["flavour"], "iteration": meta.get("iteration")},
        "sovits": {"model": m, "data": {k: data[k] for k in ("sampling_rate", "hop_length", "filter_length",
                                                              "win_length")},
                   "spk": norm["spk"], "speech_encoder": norm["speech_encoder"],
                   "unit_interpolate_mode": norm["unit_interpolate_mode"], "flavour": norm["flavour"]},
    }
    weights = {"model.safetensors": tensors}
    if cluster is not None:
        weights["cluster.safetensors"], cnote = read_kmeans(cluster, enc_dim, speakers)
        cfg["cluster"] = {"file": "cluster.safetensors", "speakers": sorted(weights["cluster.safetensors"])}
        notes.append(cnote)
    # build the network once: proves the folder will load (shapes, layout) before anything is written
    from svc_dsp.models.sovits.model import SovitsModel
    SovitsModel(cfg, tensors, None)
    folder = write_model_folder(out_dir, cfg, weights, overwrite=overwrite)
    return folder, notes


def read_kmeans(path: str | os.PathLike, dim: int, speakers: list[str]) -> tuple[dict[str, np.ndarray], str]:
    """so-vits ``kmeans_10000.pt`` ({speaker: {"cluster_centers_": [K, D], ...}}) -> {speaker: centres}."""
    res = unpickle_in_subprocess(path, allow_numpy=True, what="k-means cluster file")
    out: dict[str, np.ndarray] = {}
    for key, arr in res.tensors.items():
        spk, _, field = key.rpartition("/")
        if field != "cluster_centers_":
            continue
        if arr.ndim != 2 or arr.shape[1] != dim:
            raise WeightMismatchError(f"k-means file '{path}': centres for '{spk}' have shape {arr.shape}; the voice "
                                      f"uses {dim}-dim units")
        out[spk] = np.ascontiguousarray(arr, dtype=np.float32)
    if not out:
        raise ModelFormatError(f"'{path}' holds no 'cluster_centers_' arrays; not a so-vits k-means file")
    unknown = sorted(set(out) - set(speakers))
    note = f"cluster centres for {', '.join(sorted(out))}"
    if unknown:
        note += f" (not speakers of this voice: {', '.join(unknown)})"
    return out, note
