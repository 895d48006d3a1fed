"""The NSF-HiFiGAN decoder of a so-vits voice, fast: the same numbers as :class:`Generator`
(fp32; max difference ~1e-6 on the waveform) with fewer operations.

Where the time goes: the residual blocks (three per upsampling stage, kernels 3/7/11, dilations
1/3/5) at 44.1 kHz. A direct convolution costs k·C² multiply-adds per output sample; as an
overlap-save FFT convolution it costs about 2·C²·N/(N - span + 1) whatever its kernel and
dilation (C channels, blocks of N samples, span = (k-1)·d + 1), plus the transforms. So the
11-tap convolutions of the 32..128-channel stages run in the frequency domain (channel mixing
per frequency bin as one batched complex matrix product), with their kernels transformed once
(~17 MB per 128-channel convolution; 133 MB for a default 4.1 voice). On one AVX2 core the
7-tap ones gained little for the memory, the 3-tap ones nothing, and the 256-channel stage's
transformed kernels would take ~70 MB each; they stay direct.

FFT rounding differs from direct summation in the last bits (~1e-6 relative), far below the
1e-4 the fast path is held to (tests/sovits/test_fast.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from svc_dsp.models.sovits.nsf_hifigan import LRELU_SLOPE, Generator, ResBlock1, ResBlock2

FFT_BLOCK = 256  # samples per overlap-save block (N)
FFT_MIN_TAPS, FFT_MIN_CH, FFT_MAX_CH = 11, 32, 128


def _span(conv: nn.Conv1d) -> int:
    return (conv.kernel_size[0] - 1) * conv.dilation[0] + 1


class FftConv1d:
    """``conv`` (a Conv1d with symmetric padding, stride 1, groups 1) as an overlap-save FFT
    convolution. __call__(x (1, C_in, L)) -> (1, C_out, L') with L' as ``conv`` gives."""

    def __init__(self, conv: nn.Conv1d, block: int = FFT_BLOCK) -> None:
        w = conv.weight.detach()
        co, ci, k = w.shape
        d = conv.dilation[0]
        self.span, self.pad, self.co = _span(conv), int(conv.padding[0]), co
        self.n = max(block, 1 << math.ceil(math.log2(4 * self.span)))
        self.valid = self.n - self.span + 1
        # conv1d is a correlation: y[t] = sum_j w[j] x[t + j*d]; as a convolution with h,
        # h[span-1-j*d] = w[j], the outputs y[b .. b+valid) come from input block [b, b+n)
        h = w.new_zeros(co, ci, self.n)
        h[:, :, 0:self.span:d] = w.flip(-1)
        self.wf = torch.fft.rfft(h, dim=-1).permute(2, 0, 1).contiguous()  # (bins, C_out, C_in)
        self.bias = None if conv.bias is None else conv.bias.detach()[:, None]

    @property
    def nbytes(self) -> int:
        return self.wf.numel() * self.wf.element_size()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        _, c, length = x.shape
        out_len = length + 2 * self.pad - self.span + 1
        nb = -(-out_len // self.valid)
        right = nb * self.valid + self.span - 1 - length - self.pad
        xp = F.pad(x[0], (self.pad, right))
        frames = xp.unfold(-1, self.n, self.valid)  # (C_in, nb, n)
        xf = torch.fft.rfft(frames, dim=-1).permute(2, 0, 1)  # (bins, C_in, nb)
        yf = torch.bmm(self.wf, xf)  # (bins, C_out, nb)
        y = torch.fft.irfft(yf.permute(1, 2, 0), n=self.n, dim=-1)[..., self.span - 1:]
        y = y.reshape(self.co, -1)[:, :out_len]
        if self.bias is not None:
            y = y + self.bias
        return y[None]


def _use_fft(conv: nn.Conv1d) -> bool:
    return (conv.kernel_size[0] >= FFT_MIN_TAPS and FFT_MIN_CH <= conv.in_channels <= FFT_MAX_CH
            and conv.stride[0] == 1 and conv.groups == 1)


class FastDecoder:
    """Callable like ``Generator.forward``: (z (1, inter, T), f0 (1, T) Hz, g (1, gin, 1|T),
    rand_ini (1, 9), noise (1, T*hop, 9)) -> audio (1, 1, T*hop). Batch size 1 only.

    ``frames=(a, b)`` decodes only what output frames a..b-1 need (plus the decoder's receptive
    field, :attr:`margin_frames`) and returns their audio (1, 1, (b-a)*hop); the sine source is
    still computed over the whole signal so that its phase and random draws are the same.
    """

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.convs: dict[int, FftConv1d] = {}
        for rb in gen.resblocks:
            layers = (list(rb.convs1) + list(rb.convs2)) if isinstance(rb, ResBlock1) else list(rb.convs)
            for c in layers:
                if _use_fft(c):
                    self.convs[id(c)] = FftConv1d(c)
        self.margin_frames = receptive_half_width(gen)

    @property
    def extra_bytes(self) -> int:
        """Memory held by the transformed kernels."""
        return sum(c.nbytes for c in self.convs.values())

    def _conv(self, conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        f = self.convs.get(id(conv))
        return f(x) if f is not None else conv(x)

    def _resblock(self, rb: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if isinstance(rb, ResBlock1):
            for c1, c2 in zip(rb.convs1, rb.convs2):
                h = self._conv(c1, F.leaky_relu(x, LRELU_SLOPE))
                h = self._conv(c2, F.leaky_relu_(h, LRELU_SLOPE))
                x = x + h
            return x
        assert isinstance(rb, ResBlock2)
        for c in rb.convs:
            x = x + self._conv(c, F.leaky_relu(x, LRELU_SLOPE))
        return x

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, f0: torch.Tensor, g: torch.Tensor, rand_ini: torch.Tensor,
                 noise: torch.Tensor, frames: tuple[int, int] | None = None) -> torch.Tensor:
        gen = self.gen
        t = x.shape[-1]
        f0_up = torch.repeat_interleave(f0, gen.upp, dim=1)
        har = gen.m_source(f0_up, rand_ini, noise).transpose(1, 2)
        a, b = (0, t) if frames is None else frames
        lo, hi = max(0, a - self.margin_frames), min(t, b + self.margin_frames)
        if (lo, hi) != (0, t):
            x = x[..., lo:hi]
            har = har[..., lo * gen.upp:hi * gen.upp]
            if g.shape[-1] > 1:
                g = g[..., lo:hi]
        x = gen.conv_pre(x) + gen.cond(g)
        nk = gen.num_kernels
        for i, up in enumerate(gen.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            x = x + gen.noise_convs[i](har)
            xs = self._resblock(gen.resblocks[i * nk], x)
            for j in range(1, nk):
                xs = xs + self._resblock(gen.resblocks[i * nk + j], x)
            x = xs / nk
        x = torch.tanh(gen.conv_post(F.leaky_relu(x)))
        return x[..., (a - lo) * gen.upp:(b - lo) * gen.upp]


def receptive_half_width(gen: Generator) -> int:
    """Frames on each side that one output frame of ``gen`` depends on (derived from the
    layers, rounded up, plus one frame for the transposed convolutions' phase)."""
    rate = 1  # samples per frame at the current stage
    half = (gen.conv_pre.kernel_size[0] - 1) / 2  # in frames
    for i, up in enumerate(gen.ups):
        k, s = up.kernel_size[0], up.stride[0]
        half += math.ceil(k / s) / rate  # a transposed output sample sees ceil(k/s) inputs
        rate *= s
        nk = gen.num_kernels
        widest = 0
        for rb in gen.resblocks[i * nk:(i + 1) * nk]:
            convs = (list(rb.convs1) + list(rb.convs2)) if isinstance(rb, ResBlock1) else list(rb.convs)
            widest = max(widest, sum((_span(c) - 1) // 2 for c in convs))
        half += widest / rate
    half += (gen.conv_post.kernel_size[0] - 1) / 2 / rate
    return int(math.ceil(half)) + 1
