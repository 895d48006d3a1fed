"""so-vits-svc 4.1 ``SynthesizerTrn`` for inference (spec §2.2), module names as in its state dict.

:meth:`SovitsNet.infer` takes every random quantity as an argument; :meth:`SovitsNet.infer_seeded`
draws them from a private ``torch.Generator(seed)`` in so-vits's order (prior noise, sine initial
phases, sine noise), which reproduces ``torch.manual_seed(52468)`` + ``SynthesizerTrn.infer`` on
CPU without touching torch's global RNG.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
from torch import nn

from svc_dsp.models.sovits.attentions import FFT, Encoder
from svc_dsp.models.sovits.flow import Flow
from svc_dsp.models.sovits.nsf_hifigan import N_HARMONICS, Generator

F0_BIN, F0_MIN, F0_MAX = 256, 50.0, 1100.0


def f0_to_coarse(f0: torch.Tensor) -> torch.Tensor:
    """Hz -> pitch bins 1..255 on the mel scale (unvoiced/0 Hz -> 1), rounding half to even."""
    mel_min = 1127.0 * math.log(1.0 + F0_MIN / 700.0)
    mel_max = 1127.0 * math.log(1.0 + F0_MAX / 700.0)
    a = (F0_BIN - 2) / (mel_max - mel_min)
    b = mel_min * a - 1.0
    mel = 1127.0 * torch.log(1.0 + f0 / 700.0)
    mel = torch.where(mel > 0, mel * a - b, mel)
    return torch.clamp(torch.round(mel), 1, F0_BIN - 1).long()


class TextEncoder(nn.Module):
    """Prior encoder ``enc_p``: x + f0 embedding -> relative-attention encoder -> (m, logs)."""

    def __init__(self, m: Mapping[str, Any]) -> None:
        super().__init__()
        h, inter = int(m["hidden_channels"]), int(m["inter_channels"])
        self.inter = inter
        self.proj = nn.Conv1d(h, 2 * inter, 1)
        self.f0_emb = nn.Embedding(256, h)
        self.enc_ = Encoder(h, int(m["filter_channels"]), int(m["n_heads"]), int(m["n_layers"]), int(m["kernel_size"]))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, coarse: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x + self.f0_emb(coarse).transpose(1, 2)
        x = self.enc_(x * mask, mask)
        stats = self.proj(x) * mask
        return stats[:, :self.inter], stats[:, self.inter:]


class F0Decoder(nn.Module):
    """Automatic F0 prediction (``f0_decoder``): normalised log-F0 from content + speaker."""

    def __init__(self, m: Mapping[str, Any]) -> None:
        super().__init__()
        h, gin = int(m["hidden_channels"]), int(m["gin_channels"])
        self.prenet = nn.Conv1d(h, h, 3, padding=1)
        self.decoder = FFT(h, int(m["filter_channels"]), int(m["n_heads"]), int(m["n_layers"]), int(m["kernel_size"]))
        self.proj = nn.Conv1d(h, 1, 1)
        self.f0_prenet = nn.Conv1d(1, h, 3, padding=1)
        self.cond = nn.Conv1d(gin, h, 1)

    def forward(self, x: torch.Tensor, norm_f0: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x = x + self.cond(g)
        x = x + self.f0_prenet(norm_f0)
        x = self.prenet(x) * mask
        x = self.decoder(x * mask, mask)
        return self.proj(x) * mask


class SovitsNet(nn.Module):
    def __init__(self, m: Mapping[str, Any], sample_rate: int) -> None:
        super().__init__()
        self.m = dict(m)
        h, gin = int(m["hidden_channels"]), int(m["gin_channels"])
        self.inter = int(m["inter_channels"])
        self.emb_g = nn.Embedding(int(m["n_speakers"]), gin)
        self.emb_vol = nn.Linear(1, h) if m["vol_embedding"] else None
        self.pre = nn.Conv1d(int(m["ssl_dim"]), h, 5, padding=2)
        self.enc_p = TextEncoder(m)
        self.dec = Generator(m, sample_rate)
        self.flow = Flow(self.m)
        self.f0_decoder = F0Decoder(m) if m["use_automatic_f0_prediction"] else None
        self.emb_uv = nn.Embedding(2, h)
        self.hop = self.dec.upp

    def infer(self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor, g: torch.Tensor, vol: torch.Tensor | None,
              z_noise: torch.Tensor, rand_ini: torch.Tensor, src_noise: torch.Tensor, noise_scale: float | torch.Tensor,
              predict_f0: bool = False, dec: Callable[..., torch.Tensor] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """c (1, ssl, T), f0/uv (1, T), g (1, gin, 1|T) speaker embedding(s), vol (1, T) or None,
        z_noise (1, inter, T) N(0,1), rand_ini (1, 9) U(0,1), src_noise (1, T*hop, 9) N(0,1)
        -> (audio (1, 1, T*hop), f0 used (1, T)). ``dec``: another decoder with
        :attr:`dec`'s signature (the fast one), else :attr:`dec`."""
        mask = torch.ones_like(f0[:, None, :])
        x = self.pre(c) * mask + self.emb_uv(uv.long()).transpose(1, 2)
        if self.emb_vol is not None and vol is not None:
            x = x + self.emb_vol(vol[:, :, None]).transpose(1, 2)
        if predict_f0 and self.f0_decoder is not None:
            lf0 = 2595.0 * torch.log10(1.0 + f0[:, None, :] / 700.0) / 500.0
            voiced = uv[:, None, :]
            denom = torch.where(voiced.sum() > 0, voiced.sum(), torch.tensor(9999.0))
            norm_lf0 = (lf0 - (lf0 * voiced).sum() / denom) * mask
            pred = self.f0_decoder(x, norm_lf0, mask, g)
            f0 = (700.0 * (torch.pow(10.0, pred * 500.0 / 2595.0) - 1.0)).squeeze(1)
        m_p, logs_p = self.enc_p(x, mask, f0_to_coarse(f0))
        # noise pre-scaled (as the ONNX graph receives it); so-vits multiplies by exp(logs) first,
        # a last-bit difference
        z_p = (m_p + (z_noise * noise_scale) * torch.exp(logs_p)) * mask
        z = self.flow.reverse(z_p, mask, g)
        o = (dec or self.dec)(z * mask, f0, g, rand_ini, src_noise)
        return o, f0

    @torch.no_grad()
    def infer_seeded(self, c: torch.Tensor, f0: torch.Tensor, uv: torch.Tensor, g: torch.Tensor,
                     vol: torch.Tensor | None, noise_scale: float = 0.4, seed: int = 52468,
                     predict_f0: bool = False, dec: Callable[..., torch.Tensor] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(int(seed))
        t = f0.shape[1]
        z_noise = torch.randn((1, self.inter, t), generator=gen)
        rand_ini = torch.rand((1, N_HARMONICS), generator=gen)
        src_noise = torch.randn((1, t * self.hop, N_HARMONICS), generator=gen)
        return self.infer(c, f0, uv, g, vol, z_noise, rand_ini, src_noise, noise_scale, predict_f0, dec)
