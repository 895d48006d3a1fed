"""NSF-HiFiGAN decoder of so-vits-svc 4.1 (``dec``) with its harmonic-plus-noise sine source.

Random draws, in so-vits order, from the generator passed in: initial phases U(0,1) of
harmonics 2..9 (shape (B, 9), fundamental 0), then the additive noise N(0,1) of shape
(B, T*hop, 9). Alternatively both can be given explicitly (ONNX export, parity tests).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from svc_dsp.models.sovits.layout import decoder_channels, noise_conv_stride

LRELU_SLOPE = 0.1
N_HARMONICS = 9
SINE_AMP, NOISE_STD = 0.1, 0.003


def sine_source(f0_up: torch.Tensor, sample_rate: int, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """SineGen (4.1-Stable): f0_up (B, L) Hz at the audio rate -> (B, L, 9) gated sines + noise.

    rand_ini: (B, 9) initial phases (column 0 is forced to 0); noise: (B, L, 9) standard normal.
    """
    # The phase is accumulated in float64 (so-vits: float32). Over 10^5 samples float32 cumsums
    # differ between runtimes by ~1e-5 cycles, enough to break torch/ONNX parity; float64 makes
    # both agree and is closer to the exact phase than either float32 result.
    dtype = f0_up.dtype
    harm = torch.arange(1, N_HARMONICS + 1, dtype=torch.float64, device=f0_up.device)
    fn = f0_up.to(torch.float64)[:, :, None] * harm
    rad = torch.remainder(fn / sample_rate, 1.0)
    rand_ini = rand_ini.to(torch.float64)
    ini = torch.cat([torch.zeros_like(rand_ini[:, :1]), rand_ini[:, 1:]], dim=1)
    rad = torch.cat([rad[:, :1] + ini[:, None, :], rad[:, 1:]], dim=1)
    wrapped = torch.remainder(torch.cumsum(rad, 1), 1.0)
    # subtract 1 at each step where the running fractional phase wraps (keeps cumsum small)
    shift = (wrapped[:, 1:] - wrapped[:, :-1] < 0).to(rad.dtype) * -1.0
    shift = torch.cat([torch.zeros_like(rad[:, :1]), shift], dim=1)
    sines = (torch.sin(torch.cumsum(rad + shift, dim=1) * 2 * math.pi) * SINE_AMP).to(dtype)
    uv = (f0_up > 0).to(dtype)[:, :, None]
    amp = uv * NOISE_STD + (1 - uv) * SINE_AMP / 3
    return sines * uv + amp * noise


class SourceModule(nn.Module):
    """``m_source``: sines -> ``l_linear`` (9 -> 1) -> tanh."""

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.l_linear = nn.Linear(N_HARMONICS, 1)

    def forward(self, f0_up: torch.Tensor, rand_ini: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.l_linear(sine_source(f0_up, self.sample_rate, rand_ini, noise)))


def _pad(k: int, d: int = 1) -> int:
    return (k * d - d) // 2


class ResBlock1(nn.Module):
    def __init__(self, ch: int, k: int, dil: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=_pad(k, d)) for d in dil)
        self.convs2 = nn.ModuleList(nn.Conv1d(ch, ch, k, padding=_pad(k)) for _ in dil)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    def __init__(self, ch: int, k: int, dil: list[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=_pad(k, d)) for d in dil)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x


class Generator(nn.Module):
    """z (B, inter, T), f0 (B, T) Hz, g (B, gin, 1 or T) -> audio (B, 1, T*hop) in [-1, 1]."""

    def __init__(self, m: Mapping[str, Any], sample_rate: int) -> None:
        super().__init__()
        rates, kernels = list(m["upsample_rates"]), list(m["upsample_kernel_sizes"])
        ch = decoder_channels(m)
        self.upp = math.prod(rates)
        self.num_kernels = len(m["resblock_kernel_sizes"])
        self.m_source = SourceModule(sample_rate)
        self.noise_convs = nn.ModuleList()
        for i in range(len(rates)):
            s = noise_conv_stride(m, i)
            self.noise_convs.append(nn.Conv1d(1, ch[i + 1], 2 * s, stride=s, padding=s // 2) if s
                                    else nn.Conv1d(1, ch[i + 1], 1))
        self.conv_pre = nn.Conv1d(int(m["inter_channels"]), ch[0], 7, padding=3)
        self.ups = nn.ModuleList(nn.ConvTranspose1d(ch[i], ch[i + 1], k, u, padding=(k - u) // 2)
                                 for i, (u, k) in enumerate(zip(rates, kernels)))
        block = ResBlock1 if m["resblock"] == "1" else ResBlock2
        self.resblocks = nn.ModuleList(block(ch[i + 1], int(k), list(d)) for i in range(len(rates))
                                       for k, d in zip(m["resblock_kernel_sizes"], m["resblock_dilation_sizes"]))
        self.conv_post = nn.Conv1d(ch[-1], 1, 7, padding=3)
        self.cond = nn.Conv1d(int(m["gin_channels"]), ch[0], 1)

    def forward(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor, rand_ini: torch.Tensor,
                noise: torch.Tensor) -> torch.Tensor:
        f0_up = torch.repeat_interleave(f0, self.upp, dim=1)  # nearest upsampling x hop
        har = self.m_source(f0_up, rand_ini, noise).transpose(1, 2)
        x = self.conv_pre(x) + self.cond(g)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = x + self.noise_convs[i](har)
            xs = self.resblocks[i * self.num_kernels](x)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x)
            x = xs / self.num_kernels
        x = self.conv_post(F.leaky_relu(x))
        return torch.tanh(x)
