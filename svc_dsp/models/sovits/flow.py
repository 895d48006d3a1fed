"""The normalising flow of so-vits-svc 4.1, inference (reverse) direction only.

WaveNet couplings (optionally depthwise-separable, optionally one shared WN) or VITS2-style
transformer couplings. All couplings are mean-only: x1 <- (x1 - m(x0, g)) * mask.
Weight-normed convs are plain convs here; the loader folds g*v/|v| into ``weight``.
"""
from __future__ import annotations

import torch
from torch import nn

from svc_dsp.models.sovits.attentions import FFT


class DepthwiseSeparableConv1d(nn.Module):
    """``depth_conv`` (groups = channels, kernel k, dilation d) then ``point_conv`` (1x1)."""

    def __init__(self, channels: int, out_channels: int, kernel_size: int, dilation: int, padding: int) -> None:
        super().__init__()
        self.depth_conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, dilation=dilation,
                                    padding=padding)
        self.point_conv = nn.Conv1d(channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.point_conv(self.depth_conv(x))


class WN(nn.Module):
    """WaveNet stack with gated tanh*sigmoid units and global (or per-frame) conditioning."""

    def __init__(self, hidden: int, kernel_size: int, dilation_rate: int, n_layers: int, gin_channels: int,
                 depthwise: bool = False) -> None:
        super().__init__()
        self.hidden, self.n_layers = hidden, n_layers
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        for i in range(n_layers):
            d = dilation_rate ** i
            pad = (kernel_size * d - d) // 2
            if depthwise:
                self.in_layers.append(DepthwiseSeparableConv1d(hidden, 2 * hidden, kernel_size, d, pad))
            else:
                self.in_layers.append(nn.Conv1d(hidden, 2 * hidden, kernel_size, dilation=d, padding=pad))
            self.res_skip_layers.append(nn.Conv1d(hidden, 2 * hidden if i < n_layers - 1 else hidden, 1))
        self.cond_layer = nn.Conv1d(gin_channels, 2 * hidden * n_layers, 1) if gin_channels else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        h = self.hidden
        out = torch.zeros_like(x)
        gc = self.cond_layer(g) if (g is not None and self.cond_layer is not None) else None
        for i in range(self.n_layers):
            a = self.in_layers[i](x)
            if gc is not None:
                a = a + gc[:, 2 * h * i:2 * h * (i + 1)]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            rs = self.res_skip_layers[i](acts)
            if i < self.n_layers - 1:
                x = (x + rs[:, :h]) * mask
                out = out + rs[:, h:]
            else:
                out = out + rs
        return out * mask


class Coupling(nn.Module):
    """Mean-only affine coupling: ``pre`` -> body (WN or FFT) -> ``post``. A shared body is held
    outside the module tree (stored once as ``flow.wn``)."""

    def __init__(self, channels: int, hidden: int, body: nn.Module, shared: bool) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        if shared:
            self._shared = [body]
        else:
            self.enc = body
        self.post = nn.Conv1d(hidden, self.half, 1)

    @property
    def body(self) -> nn.Module:
        return self._shared[0] if hasattr(self, "_shared") else self.enc

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = x[:, :self.half], x[:, self.half:]
        h = self.pre(x0) * mask
        h = self.body(h, mask, g=g)
        m = self.post(h) * mask
        x1 = (x1 - m) * mask
        return torch.cat([x0, x1], 1)


class Flow(nn.Module):
    """``flows`` = [Coupling, Flip] * n (Flips carry no weights); run in reverse for inference."""

    def __init__(self, m: dict) -> None:
        super().__init__()
        inter, h, gin = int(m["inter_channels"]), int(m["hidden_channels"]), int(m["gin_channels"])
        share = bool(m["flow_share_parameter"])
        if m["use_transformer_flow"]:
            def make() -> nn.Module:
                return FFT(h, int(m["filter_channels"]), int(m["n_heads"]), int(m["n_layers_trans_flow"]), 5, gin)
            n_flows = int(m["n_flow_layer"])
        else:
            def make() -> nn.Module:
                return WN(h, 5, 1, int(m["n_flow_layer"]), gin, bool(m["use_depthwise_conv"]))
            n_flows = 4
        self.flows = nn.ModuleList()
        shared = make() if share else None
        for _ in range(n_flows):
            self.flows.append(Coupling(inter, h, shared if share else make(), share))
            self.flows.append(nn.Identity())  # Flip: no weights
        if share:
            self.wn = shared

    def reverse(self, z: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        for f in reversed(self.flows):
            z = torch.flip(z, [1]) if isinstance(f, nn.Identity) else f.reverse(z, mask, g)
        return z
