"""Causal convolutions that run either on a whole signal or block by block from a cache.

The cached-convolution idea: every convolution is causal (left padding only), and
its left context is kept as explicit state, so a sequence processed in pieces gives
the same result as the sequence processed at once. Lookahead is never built into a
layer; a network that needs it is trained with its targets delayed, and declares
that delay (see :attr:`CausalStack.delay_frames` users).

State is an explicit list of tensors so that ONNX export can pass it as inputs and
outputs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CausalConv1d(nn.Conv1d):
    """Conv1d with left padding (k-1)*dilation taken from a cache.

    forward(x: (B, C_in, T), cache: (B, C_in, pad) | None) -> (y: (B, C_out, T), cache')
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, dilation: int = 1, groups: int = 1,
                 bias: bool = True) -> None:
        super().__init__(in_ch, out_ch, kernel_size, dilation=dilation, groups=groups, bias=bias)
        self.pad = (kernel_size - 1) * dilation

    def cache_shape(self, batch: int) -> tuple[int, int, int]:
        return (batch, self.in_channels, self.pad)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        if cache is None:
            cache = x.new_zeros(self.cache_shape(x.shape[0]))
        if self.pad == 0:
            return F.conv1d(x, self.weight, self.bias, 1, 0, 1, self.groups), cache
        xx = torch.cat([cache, x], dim=-1)
        y = F.conv1d(xx, self.weight, self.bias, 1, 0, self.dilation, self.groups)
        return y, xx[..., xx.shape[-1] - self.pad:]


class ResidualBlock(nn.Module):
    """x + W2 · leaky(conv_dilated(x) + cond): one causal residual unit.

    x: (B, C, T); cond: (B, C, 1) or (B, C, T) added before the nonlinearity.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel_size, dilation)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None,
                cond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h, cache = self.conv(x, cache)
        if cond is not None:
            h = h + cond
        h = F.leaky_relu(h, 0.1)
        return x + self.out(h), cache


class CausalStack(nn.Module):
    """A stack of causal residual blocks; its receptive field is derived from its layers."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(ResidualBlock(channels, kernel_size, d) for d in dilations)

    @property
    def receptive_field(self) -> int:
        """Frames of past context one output frame depends on (including itself)."""
        return 1 + sum(b.conv.pad for b in self.blocks)

    def cache_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return [b.conv.cache_shape(batch) for b in self.blocks]

    def forward(self, x: torch.Tensor, caches: list[torch.Tensor] | None,
                cond: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        new: list[torch.Tensor] = []
        for i, b in enumerate(self.blocks):
            x, c = b(x, None if caches is None else caches[i], cond)
            new.append(c)
        return x, new
