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
            rel_k = self._relative_embeddings(self.emb_rel_k, t)
            rel_logits = torch.matmul(qs, rel_k.unsqueeze(0).transpose(-2, -1))
            scores = scores + self._rel_to_abs(rel_logits)
        if attn_mask is not None:
            scores = scores.masked_fill(attn_mask == 0, -1e4)
        p = F.softmax(scores, dim=-1)
        out = torch.matmul(p, v)
        if self.window_size is not None:
            rel_w = self._abs_to_rel(p)
            rel_v = self._relative_embeddings(self.emb_rel_v, t)
            out = out + torch.matmul(rel_w, rel_v.unsqueeze(0))
        out = out.transpose(2, 3).contiguous().view(b, d, t)
        return self.conv_o(out)

    def _relative_embeddings(self, emb: torch.Tensor, length: int) -> torch.Tensor:
        w = self.window_size
        pad = max(length - (w + 1), 0)
        start = max((w + 1) - length, 0)
        if pad > 0:
            emb = F.pad(emb, [0, 0, pad, pad, 0, 0])
        return emb[:, start:start + 2 * length - 1]

    @staticmethod
    def _rel_to_abs(x: torch.Tensor) -> torch.Tensor:
        b, h, n, _ = x.shape
        x = F.pad(x, [0, 1])
        x = x.reshape(b, h, n * 2 * n)
        x = F.pad(x, [0, n - 1])
        return x.reshape(b, h, n + 1, 2 * n - 1)[:, :, :n, n - 1:]

    @staticmethod
    def _abs_to_rel(x: torch.Tensor) -> torch.Tensor:
        b, h, n, _ = x.shape
        x = F.pad(x, [0, n - 1])
        x = x.reshape(b, h, n * n + n * (n - 1))
        x = F.pad(x, [n, 0])
        return x.reshape(b, h, n, 2 * n)[:, :, :, 1:]


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


def subsequent_mask(length: int, like: torch.Tensor) -> torch.Tensor:
    """(1, 1, T, T) lower-triangular ones."""
    return torch.tril(torch.ones(length, length, dtype=like.dtype, device=like.device))[None, None]


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
        attn_mask = subsequent_mask(x.shape[2], x)
        x = x * mask
        h = self.channels
        for i in range(self.n_layers):
            if gc is not None:
                a = self.cond_pre(x) + gc[:, 2 * h * i:2 * h * (i + 1)]
                x = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            x = self.norm_layers_0[i](x + self.self_attn_layers[i](x, attn_mask))
            x = self.norm_layers_1[i](x + self.ffn_layers[i](x, mask))
        return x * mask
