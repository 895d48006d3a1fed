"""HuBERT-base / ContentVec content encoder in plain PyTorch (kind "hubert"), fairseq key names.

16 kHz mono in, 50 frames/s out (conv stack strides 5*2^6 = 320 samples). ``vec768l12`` = output
of transformer layer 12; ``vec256l9`` = layer 9 through ``final_proj`` (spec §4.3). The folder is
written by ``svc-host import encoder``: ``model.json`` {"family": "content-encoder", "kind":
"hubert", "name", "output_layer", "final_proj", "dim", ...} + ``encoder.safetensors``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from svc_dsp.errors import ModelFormatError
from svc_dsp.models.encoders.registry import ContentEncoder, mono_at, register_content_encoder
from svc_dsp.models.folder import load_tensors
from svc_dsp.models.folder import check_shapes

SAMPLE_RATE = 16000
CONV_LAYERS = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
ARCH_DEFAULTS: dict[str, Any] = {"embed_dim": 768, "ffn_dim": 3072, "heads": 12, "conv_pos": 128,
                                 "conv_pos_groups": 16, "final_dim": 256, "conv_dim": 512}


def n_units(n_samples: int) -> int:
    """Output frames for n 16 kHz samples (exact conv-stack arithmetic)."""
    n = n_samples
    for _, k, s in CONV_LAYERS:
        n = (n - k) // s + 1
    return max(n, 0)


class _Layer(nn.Module):
    def __init__(self, d: int, ffn: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.self_attn = nn.Module()
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, n, nn.Linear(d, d))
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        a = self.self_attn
        hd = d // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, hd).transpose(1, 2)

        q = split(a.q_proj(x) * hd ** -0.5)
        att = torch.softmax(q @ split(a.k_proj(x)).transpose(-2, -1), dim=-1) @ split(a.v_proj(x))
        x = self.self_attn_layer_norm(x + a.out_proj(att.transpose(1, 2).reshape(b, t, d)))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class HubertNet(nn.Module):
    """wave (B, N) at 16 kHz -> features (B, T, dim) of layer ``output_layer`` [+ final_proj]."""

    def __init__(self, n_layers: int, final_proj: bool, arch: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        a = {**ARCH_DEFAULTS, **(arch or {})}
        cd, d = int(a["conv_dim"]), int(a["embed_dim"])
        self.feature_extractor = nn.Module()
        layers = []
        cin = 1
        for i, (c, k, s) in enumerate(CONV_LAYERS):
            conv = nn.Conv1d(cin, c, k, stride=s, bias=False)
            if i == 0:
                layers.append(nn.Sequential(conv, nn.Identity(), nn.GroupNorm(c, c), nn.GELU()))
            else:
                layers.append(nn.Sequential(conv, nn.Identity(), nn.GELU()))
            cin = c
        self.feature_extractor.conv_layers = nn.ModuleList(layers)
        self.layer_norm = nn.LayerNorm(cd)
        self.post_extract_proj = nn.Linear(cd, d)
        self.encoder = nn.Module()
        self.encoder.pos_conv = nn.Sequential(nn.Conv1d(d, d, int(a["conv_pos"]), padding=int(a["conv_pos"]) // 2,
                                                        groups=int(a["conv_pos_groups"])))
        self.encoder.layer_norm = nn.LayerNorm(d)
        self.encoder.layers = nn.ModuleList(_Layer(d, int(a["ffn_dim"]), int(a["heads"])) for _ in range(n_layers))
        self.final_proj = nn.Linear(d, int(a["final_dim"])) if final_proj else None
        self.even_pos_kernel = int(a["conv_pos"]) % 2 == 0

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave[:, None, :]
        for layer in self.feature_extractor.conv_layers:
            x = layer(x)
        x = self.post_extract_proj(self.layer_norm(x.transpose(1, 2)))
        pos = self.encoder.pos_conv(x.transpose(1, 2))
        if self.even_pos_kernel:
            pos = pos[:, :, :-1]  # SamePad
        x = self.encoder.layer_norm(x + F.gelu(pos).transpose(1, 2))
        for layer in self.encoder.layers:
            x = layer(x)
        return self.final_proj(x) if self.final_proj is not None else x


def expected_shapes(n_layers: int, final_proj: bool, arch: Mapping[str, Any] | None = None) -> dict[str, tuple]:
    """fairseq tensor names/shapes the encoder folder holds (weight norm of pos_conv kept as g/v)."""
    net = HubertNet(n_layers, final_proj, arch)
    out = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    w = out.pop("encoder.pos_conv.0.weight")
    out["encoder.pos_conv.0.weight_g"] = (1, 1, w[2])
    out["encoder.pos_conv.0.weight_v"] = w
    return out


class HubertEncoder(ContentEncoder):
    kind = "hubert"
    causal = False
    frame_seconds = 0.02

    def __init__(self, config: dict[str, Any], tensors: Mapping[str, np.ndarray]) -> None:
        self.config = dict(config)
        layer = int(config["output_layer"])
        fp = bool(config.get("final_proj", False))
        arch = config.get("architecture")
        check_shapes(tensors, expected_shapes(layer, fp, arch), f"content encoder '{config.get('name')}'")
        with torch.device("meta"):  # no random init: every parameter comes from the file
            self.net = HubertNet(layer, fp, arch)
        sd = {}
        for k, v in tensors.items():
            if k.endswith(".weight_g"):
                continue
            t = torch.from_numpy(np.array(v, dtype=np.float32))
            if k.endswith(".weight_v"):
                g = torch.from_numpy(np.array(tensors[k[:-2] + "_g"], dtype=np.float32))
                sd[k[:-2]] = torch._weight_norm(t, g, 2)
            else:
                sd[k] = t
        self.net.load_state_dict(sd, assign=True)
        self.net.eval()
        self.dim = int(self.net.final_proj.out_features if fp else self.net.post_extract_proj.out_features)
        if "dim" in config and int(config["dim"]) != self.dim:
            raise ModelFormatError(f"content encoder '{config.get('name')}': model.json says dim {config['dim']}, "
                                   f"the weights give {self.dim}")

    @torch.no_grad()
    def encode(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """audio float32 (N,) at 16 kHz (other rates are resampled) -> (n_units(N), dim)."""
        x = mono_at(audio, sample_rate, SAMPLE_RATE)
        if n_units(x.shape[0]) < 1:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.net(torch.from_numpy(x)[None])[0].numpy()


def _load(folder: Path, cfg: dict[str, Any]) -> HubertEncoder:
    return HubertEncoder(cfg, load_tensors(folder / "encoder.safetensors"))


register_content_encoder("hubert", _load)
