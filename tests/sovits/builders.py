"""Random-weight so-vits-svc checkpoints in the exact upstream layout, built with our own code.

The layout (names, shapes, order) comes from svc_dsp.models.sovits.layout, which test_layout
checks against the spec's full-size listings. Files are real torch pickles saved like so-vits:
{"model": state_dict, "iteration": epoch, "optimizer": ..., "learning_rate": 1e-4}.
"""
from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svc_dsp.models.sovits.layout import MODEL_DEFAULTS, is_shared_alias, sovits_state_shapes

SMALL = {"inter_channels": 8, "hidden_channels": 16, "filter_channels": 32, "n_heads": 2, "n_layers": 2,
         "kernel_size": 3, "upsample_initial_channel": 64, "n_layers_trans_flow": 2}


def sovits_config(*, encoder: str = "vec768l12", n_speakers: int = 1, spk: dict[str, int] | None = None,
                  small: bool = True, version: str = "4.1", **model: Any) -> dict[str, Any]:
    """A so-vits config.json as preprocess_flist_config.py writes it (4.1), or a 4.0 / fork one."""
    dim = 768 if encoder.startswith("vec768") else 256
    m = dict(MODEL_DEFAULTS)
    m.update(ssl_dim=dim, gin_channels=dim, n_speakers=n_speakers, speech_encoder=encoder)
    if small:
        m.update(SMALL)
    m.update(model)
    data = {"training_files": "filelists/train.txt", "validation_files": "filelists/val.txt",
            "max_wav_value": 32768.0, "sampling_rate": 44100, "filter_length": 2048, "hop_length": 512,
            "win_length": 2048, "n_mel_channels": 80, "mel_fmin": 0.0, "mel_fmax": 22050,
            "unit_interpolate_mode": "nearest"}
    if version == "4.0":
        data.pop("unit_interpolate_mode")
        for k in ("speech_encoder", "vol_embedding", "vocoder_name", "use_depthwise_conv", "flow_share_parameter",
                  "n_flow_layer", "use_automatic_f0_prediction", "use_transformer_flow", "n_layers_trans_flow",
                  "speaker_embedding"):
            m.pop(k, None)
    elif version == "fork":
        data.pop("unit_interpolate_mode")
        data["contentvec_final_proj"] = dim == 256
        m["type_"] = "hifi-gan"
        for k in ("speech_encoder", "vol_embedding", "vocoder_name", "use_depthwise_conv", "flow_share_parameter",
                  "n_flow_layer", "use_automatic_f0_prediction", "use_transformer_flow", "n_layers_trans_flow"):
            m.pop(k, None)
    return {"train": {"log_interval": 200, "eval_interval": 800, "seed": 1234, "epochs": 10000,
                      "learning_rate": 0.0001, "batch_size": 6, "segment_size": 10240},
            "data": data, "model": m, "spk": spk if spk is not None else {f"spk{i}": i for i in range(n_speakers)}}


def random_state_dict(cfg: dict[str, Any], seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    from svc_dsp.models.sovits.layout import normalize_config

    norm = normalize_config(cfg)
    m = norm["model"]
    shapes = sovits_state_shapes(m, int(cfg["data"]["filter_length"]) // 2 + 1)
    g = torch.Generator().manual_seed(seed)
    sd: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, shape in shapes.items():
        if is_shared_alias(name, m):
            continue
        if name.endswith(".gamma"):
            t = torch.ones(shape)
        elif name.endswith(".beta"):
            t = torch.zeros(shape)
        elif name.endswith(".weight_g"):
            t = 0.3 + torch.rand(shape, generator=g) * 0.5
        elif name.endswith(".bias"):
            t = torch.randn(shape, generator=g) * 0.02
        elif name.startswith(("emb_", "enc_p.f0_emb")):
            t = torch.randn(shape, generator=g) * 0.3
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
            t = torch.randn(shape, generator=g) / np.sqrt(max(fan_in, 1))
        sd[name] = t
    # torch saves a shared module under every alias: write the same tensors in upstream order
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name in shapes:
        if is_shared_alias(name, m):
            out[name] = sd["flow.wn." + name.split(".enc.", 1)[1]]
        else:
            out[name] = sd[name]
    return out


def save_checkpoint(path: Path, sd: "OrderedDict[str, torch.Tensor]", *, release: bool = False,
                    half: bool = False) -> Path:
    """torch.save like so-vits train.py (or compress_model.py when release=True)."""
    model = OrderedDict((k, (v.half() if half else v)) for k, v in sd.items() if not (release and k.startswith("enc_q.")))
    optim = {"state": {}, "param_groups": [{"lr": 0.0001, "betas": (0.8, 0.99), "eps": 1e-09, "weight_decay": 0.01,
                                            "amsgrad": False, "params": list(range(3))}]}
    torch.save({"model": model, "iteration": 0 if release else 12, "optimizer": optim, "learning_rate": 0.0001}, path)
    return path


def write_voice(tmp: Path, name: str, cfg: dict[str, Any], *, seed: int = 0, release: bool = False,
                half: bool = False) -> tuple[Path, Path]:
    tmp.mkdir(parents=True, exist_ok=True)
    cj = tmp / f"{name}.config.json"
    cj.write_text(json.dumps(cfg), encoding="utf-8")
    pth = save_checkpoint(tmp / f"G_{name}.pth", random_state_dict(cfg, seed), release=release, half=half)
    return pth, cj


class TinyUnits(torch.nn.Module):
    """A stand-in content encoder with the ONNX encoder signature: source (1,1,N) -> embed (1,T,D)."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv1d(1, dim, 400, stride=320)

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(source * 10.0)).transpose(1, 2)


def export_tiny_encoder(path: Path, dim: int) -> Path:
    net = TinyUnits(dim).eval()
    torch.onnx.export(net, (torch.zeros(1, 1, 16000),), str(path), input_names=["source"], output_names=["embed"],
                      dynamic_axes={"source": {2: "n"}, "embed": {1: "t"}}, opset_version=17, dynamo=False)
    return path
