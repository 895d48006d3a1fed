"""Attention blocks of so-vits-svc 4.1 (the VITS ones): relative-position encoder and causal FFT.

Tensors are (B, C, T); masks (B, 1, T). Parameter names match the so-vits state dict
(LayerNorm holds ``gamma``/``beta``). Inference only: dropout is omitted.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """LayerNorm over the channel axis of (B, C, T), eps 1e-5."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels, self.eps = channels, eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, -1)
        x = F.layer_norm(x, (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention with 1x1-conv projections; optional relative positions
    (window ``window_size``, shared by heads) added to logits and values (VITS skewing)."""

    def __init__(self, channels: int, n_heads: int, window_size: int | None = None) -> None:
        super().__init__()
        assert channels % n_heads == 0
        self.n_heads, self.k_channels, self.window_size = n_heads, channels // n_heads, window_size
        if window_size is not None:
            self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window_size + 1, self.k_channels))
            self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window_size + 1, self.k_channels))
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        q, k, v = self.conv_q(x), self.conv_k(x), self.conv_v(x)
        b, d, t = k.shape
        q = q.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
        k = k.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
        v = v.view(b, self.n_heads, self.k_channels, t).transpose(2, 3)
        qs = q / math.sqrt(self.k_channels)
        scores = torch.matmul(qs, k.transpose(-2, -1))
        if self.window_size is not None:
            # logits += q_i . emb_rel_k[j - i + w] for |j - i| <= w (what VITS's "skewing" computes),
            # gathered from a (T, 2w+1) table: O(T*w) memory, and traceable for any T (ONNX)
            w = self.window_size
            pos = torch.arange(t, device=x.device)
            idx = pos[None, :] - pos[:, None] + w
            valid = ((idx >= 0) & (idx <= 2 * w)).to(qs.dtype)
            qe = torch.matmul(qs, self.emb_rel_k[0].transpose(0, 1))
            scores = scores + torch.gather(qe, 3, idx.clamp(0, 2 * w).expand(b, self.n_heads, t, t)) * valid
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, -1e4)
        p = F.softmax(scores, dim=-1)
        out = torch.matmul(p, v)
        if self.window_size is not None:
            # out_i += sum_k p[i, i + k - w] * emb_rel_v[k]
            jdx = pos[:, None] + torch.arange(2 * w + 1, device=x.device)[None, :] - w
            jvalid = ((jdx >= 0) & (jdx <= pos[-1])).to(p.dtype)
            jdx = torch.where(jdx >= 0, jdx, torch.zeros_like(jdx))
            jdx = torch.where(jdx <= pos[-1], jdx, pos[-1].expand_as(jdx))
            rel_w = torch.gather(p, 3, jdx.expand(b, self.n_heads, t, 2 * w + 1)) * jvalid
            out = out + torch.matmul(rel_w, self.emb_rel_v[0])
        out = out.transpose(2, 3).contiguous().view(b, d, t)
        return self.conv_o(out)


class FFN(nn.Module):
    """conv_1(k) -> ReLU -> conv_2(k); "same" padding, or causal ((k-1) left) padding."""

    def __init__(self, channels: int, filter_channels: int, kernel_size: int, causal: bool = False) -> None:
        super().__init__()
        self.conv_1 = nn.Conv1d(channels, filter_channels, kernel_size)
        self.conv_2 = nn.Conv1d(filter_channels, channels, kernel_size)
        k = kernel_size
        self.pad = (k - 1, 0) if causal else ((k - 1) // 2, k // 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.conv_1(F.pad(x * mask, self.pad))
        x = torch.relu(x)
        x = self.conv_2(F.pad(x * mask, self.pad))
        return x * mask


class Encoder(nn.Module):
    """Post-LN transformer with relative positions (window 4): the prior encoder's ``enc_``."""

    def __init__(self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 window_size: int = 4) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(MultiHeadAttention(channels, n_heads, window_size) for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(LayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FFN(channels, filter_channels, kernel_size) for _ in range(n_layers))
        self.norm_layers_2 = nn.ModuleList(LayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        x = x * mask
        for attn, n1, ffn, n2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = n1(x + attn(x, attn_mask))
            x = n2(x + ffn(x, mask))
        return x * mask


def subsequent_mask(x: torch.Tensor) -> torch.Tensor:
    """(1, 1, T, T) lower-triangular ones for x (B, C, T) (built from x: traceable for any T)."""
    row = torch.ones_like(x[0, :1, :])
    return torch.tril(row.transpose(0, 1) * row)[None, None]


class FFT(nn.Module):
    """Causal transformer (no relative positions, causal FFN): the F0 decoder's body and, with
    ``gin_channels`` > 0, the transformer-flow coupling network (gated speaker conditioning)."""

    def __init__(self, channels: int, filter_channels: int, n_heads: int, n_layers: int, kernel_size: int,
                 gin_channels: int = 0) -> None:
        super().__init__()
        self.channels, self.n_layers = channels, n_layers
        if gin_channels:
            self.cond_pre = nn.Conv1d(channels, 2 * channels, 1)
            self.cond_layer = nn.Conv1d(gin_channels, 2 * channels * n_layers, 1)
        else:
            self.cond_pre = self.cond_layer = None
        self.self_attn_layers = nn.ModuleList(MultiHeadAttention(channels, n_heads) for _ in range(n_layers))
        self.norm_layers_0 = nn.ModuleList(LayerNorm(channels) for _ in range(n_layers))
        self.ffn_layers = nn.ModuleList(FFN(channels, filter_channels, kernel_size, causal=True)
                                        for _ in range(n_layers))
        self.norm_layers_1 = nn.ModuleList(LayerNorm(channels) for _ in range(n_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        gc = self.cond_layer(g) if (g is not None and self.cond_layer is not None) else None
        attn_mask = subsequent_mask(x)
        x = x * mask
        h = self.channels
        for i in range(self.n_layers):
            if gc is not None:
                a = self.cond_pre(x) + gc[:, 2 * h * i:2 * h * (i + 1)]
                x = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            x = self.norm_layers_0[i](x + self.self_attn_layers[i](x, attn_mask))
            x = self.norm_layers_1[i](x + self.ffn_layers[i](x, mask))
        return x * mask
