"""Streaming log-mel frontend on the engine's frame grid (torch).

Frame m is computed once samples up to (m+1)*hop have arrived, from the window
[(m+1)*hop - win, (m+1)*hop). Frequencies are given in Hz, so the same frontend
config yields (almost) the same features at any sample rate whose Nyquist is above
``fmax``: a content encoder trained at one rate can run at a voice model's rate.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def hz_to_mel(f: float | np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Hz -> mel (HTK / O'Shaughnessy: 2595 log10(1 + f/700)); a tensor stays a tensor."""
    if isinstance(f, torch.Tensor):
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: float | np.ndarray) -> np.ndarray:
    """mel -> Hz, the inverse of :func:`hz_to_mel` (numpy)."""
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Triangular HTK-style mel filters, float32 (n_mels, n_fft//2+1), each normalised to unit area."""
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    fb = np.zeros((n_mels, freqs.size), dtype=np.float64)
    for i in range(n_mels):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        up = (freqs - lo) / max(mid - lo, 1e-9)
        down = (hi - freqs) / max(hi - mid, 1e-9)
        fb[i] = np.maximum(0.0, np.minimum(up, down))
        area = fb[i].sum()
        if area <= 0:  # filter narrower than a bin: take the nearest bin
            fb[i, int(np.argmin(np.abs(freqs - mid)))] = 1.0
        else:
            fb[i] /= area
    return fb.astype(np.float32)


class LogMelFrontend(nn.Module):
    """Audio hops -> log-mel frames, stateful.

    forward(x: (B, k*hop) float32, cache: (B, win-hop)) -> (mel: (B, n_mels, k), cache')
    """

    def __init__(self, sample_rate: int, hop: int, win: int, n_mels: int = 80,
                 fmin: float = 40.0, fmax: float = 8000.0) -> None:
        super().__init__()
        if win < hop:
            raise ValueError(f"mel window {win} must be >= hop {hop}")
        if fmax > sample_rate / 2:
            fmax = sample_rate / 2
        self.sample_rate, self.hop, self.win, self.n_mels = sample_rate, hop, win, n_mels
        self.n_fft = 1 << max(0, math.ceil(math.log2(win)))
        # windowed real DFT as two matrices: exportable to ONNX and cheap for a few frames
        window = np.hanning(win + 1)[:win]  # periodic Hann
        n = np.arange(win)[:, None]
        k = np.arange(self.n_fft // 2 + 1)[None, :]
        ang = 2.0 * np.pi * n * k / self.n_fft
        self.register_buffer("dft_re", torch.from_numpy((window[:, None] * np.cos(ang)).astype(np.float32)),
                             persistent=False)
        self.register_buffer("dft_im", torch.from_numpy((window[:, None] * np.sin(ang)).astype(np.float32)),
                             persistent=False)
        fb = torch.from_numpy(mel_filterbank(sample_rate, self.n_fft, n_mels, fmin, fmax))
        self.register_buffer("fb", fb, persistent=False)

    def cache_shape(self, batch: int) -> tuple[int, int]:
        return (batch, self.win - self.hop)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if cache is None:
            cache = x.new_zeros(self.cache_shape(x.shape[0]))
        xx = torch.cat([cache, x], dim=-1)
        k = (xx.shape[-1] - self.win) // self.hop + 1
        dev = xx.device
        idx = torch.arange(k, device=dev)[:, None] * self.hop + torch.arange(self.win, device=dev)[None, :]
        frames = xx[:, idx]  # (B, k, win); a gather rather than unfold so that it exports to ONNX
        power = torch.matmul(frames, self.dft_re) ** 2 + torch.matmul(frames, self.dft_im) ** 2
        mel = torch.matmul(power, self.fb.t())  # (B, k, n_mels)
        logmel = torch.log(mel + 1e-6)
        new_cache = xx[:, xx.shape[-1] - (self.win - self.hop):]
        return logmel.transpose(1, 2), new_cache
