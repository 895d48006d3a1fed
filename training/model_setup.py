"""Building the model a run trains ('hpn' on causal-mel units, 'hpnw' on Whisper units): its model.json config, the frozen encoder, and
initial weights (random, or a base model's with the speaker table mapped by name)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import TrainingError
from training.config import TrainConfig


def load_run_encoder(features_meta: dict[str, Any]) -> Any:
    """The content encoder the features were made with; refuses one whose weights changed."""
    from svc_dsp.models.encoders.registry import load_content_encoder
    from training.features import encoder_reference

    ref = features_meta["encoder"]
    folder = Path(ref["path"])
    if not folder.is_dir():
        raise TrainingError(f"the features were extracted with encoder '{ref.get('name')}' at '{folder}', which no "
                            f"longer exists; restore it or re-run 'svc-host train features' with another encoder")
    now = encoder_reference(folder)
    if now["sha256"] != ref["sha256"]:
        raise TrainingError(f"encoder '{folder}' changed since feature extraction (sha256 {now['sha256'][:12]}... vs "
                            f"{ref['sha256'][:12]}...); re-run 'svc-host train features'")
    return load_content_encoder(folder)


def model_config(cfg: TrainConfig, name: str, sample_rate: int, hop: int, speakers: list[str],
                 enc_ref: dict[str, Any], architecture: dict[str, Any]) -> dict[str, Any]:
    """The model.json fields of the model being trained (the encoder is referenced by name + sha256;
    export decides between a catalog reference and a bundled copy)."""
    from svc_dsp.models.hpn import ARCH_DEFAULTS

    out = {"family": family_for(enc_ref), "family_version": 1, "name": name, "sample_rate": sample_rate,
           "hop_size": hop, "speakers": list(speakers), "f0_range": list(cfg.f0_range),
           "content_encoder": {"kind": enc_ref["kind"], "name": enc_ref["name"], "dim": enc_ref["dim"],
                               "sha256": enc_ref["sha256"]},
           "architecture": {**ARCH_DEFAULTS, **architecture}}
    if out["family"] == "hpnw":
        from svc_dsp.models.hpnw import MEL_CEILING, WINDOW_DEFAULTS

        out["mel_ceiling"] = float(enc_ref.get("mel_ceiling", MEL_CEILING))
        out["window"] = dict(WINDOW_DEFAULTS)
    return out


def family_for(enc_ref: dict[str, Any]) -> str:
    """The voice family trained on an encoder: 'hpnw' (windowed) on Whisper units, else 'hpn' (causal)."""
    return "hpnw" if enc_ref.get("kind") == "whisper" else "hpn"


def build_model(model_cfg: dict[str, Any], encoder: Any, weights: dict[str, np.ndarray] | None = None) -> Any:
    """The voice model of ``model_cfg``'s family around ``encoder`` (its ``net`` is the trained HpnNet)."""
    if model_cfg["family"] == "hpnw":
        from svc_dsp.models.hpnw import HpnwModel

        return HpnwModel(model_cfg, encoder, weights)
    from svc_dsp.models.hpn import HpnModel

    return HpnModel(model_cfg, encoder, weights)


def base_model_init(cfg: TrainConfig, enc_ref: dict[str, Any], speakers: list[str]
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray], list[str]]:
    """(architecture, decoder weights with the speaker table mapped, notes) from ``cfg.base_model``.

    Speakers present in the base model keep their embedding; new ones start from the mean of the
    base model's embeddings.
    """
    from svc_dsp.models.catalog import load_model

    base = load_model(cfg.base_model)
    bcfg = base.config
    if bcfg.get("family") != family_for(enc_ref):
        raise TrainingError(f"base_model '{cfg.base_model}' is of family {bcfg.get('family')!r}; features of "
                            f"encoder '{enc_ref['name']}' train '{family_for(enc_ref)}' voices, so only such a "
                            f"model can be fine-tuned on them")
    bsha = bcfg.get("content_encoder", {}).get("sha256")
    if bsha and bsha != enc_ref["sha256"]:
        raise TrainingError(f"base_model '{cfg.base_model}' was trained with content encoder "
                            f"'{bcfg['content_encoder'].get('name')}' ({bsha[:12]}...), the features use "
                            f"'{enc_ref['name']}' ({enc_ref['sha256'][:12]}...); re-run 'svc-host train features "
                            f"--encoder {bcfg['content_encoder'].get('name')}' or drop base_model")
    notes = []
    if cfg.architecture and any(bcfg["architecture"].get(k) != v for k, v in cfg.architecture.items()):
        notes.append("the config's architecture differs from the base model's; the base model's is used")
    weights = dict(base.decoder_tensors())
    table = weights["spk_table"]
    old = list(base.speakers)
    new = np.empty((len(speakers), table.shape[1]), np.float32)
    for i, s in enumerate(speakers):
        if s in old:
            new[i] = table[old.index(s)]
        else:
            new[i] = table.mean(axis=0)
            notes.append(f"new speaker '{s}' starts from the base model's mean speaker embedding")
    weights["spk_table"] = new
    return dict(bcfg["architecture"]), weights, notes


def provenance(cfg: TrainConfig, prep_meta: dict[str, Any], feats_meta: dict[str, Any], step: int,
               losses: dict[str, float]) -> dict[str, Any]:
    """The model.json 'training' block."""
    secs = prep_meta.get("report", {}).get("seconds", {})
    return {"data": {"prep_dir": Path(cfg.prep_dir).name, "minutes_per_speaker": {k: round(v / 60.0, 2)
                                                                                  for k, v in secs.items()},
                     "target_lufs": prep_meta.get("target_lufs"), "f0_method": feats_meta.get("f0_method")},
            "steps": int(step), "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "losses": {k: round(float(v), 5) for k, v in losses.items()},
            "batch_size": cfg.batch_size, "segment_seconds": cfg.segment_seconds,
            "learning_rate": cfg.learning_rate, "base_model": Path(cfg.base_model).name if cfg.base_model else None}
