"""Harmonic-plus-noise synthesis, block by block with carried state (torch).

Oscillator phase is carried across calls in float64; noise is read from two
band-noise tables of coprime lengths at the absolute sample position, so a signal
synthesised in pieces equals the signal synthesised at once.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from svc_dsp.nn.mel import hz_to_mel


def band_noise_tables(sample_rate: int, n_bands: int, lengths: tuple[int, int], seed: int) -> np.ndarray:
    """float32 (2, n_bands, max(lengths)) unit-variance noise split into mel-spaced bands.

    Band masks are raised-cosine with squares summing to 1, so equal band gains give
    white noise. Table t is periodic with lengths[t] (the rest is zero-padded).
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    nyq = sample_rate / 2.0
    centres_mel = np.linspace(0.0, float(hz_to_mel(nyq)), n_bands)
    out = np.zeros((2, n_bands, max(lengths)), dtype=np.float32)
    for t, n in enumerate(lengths):
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1.0 / sample_rate)
        fm = hz_to_mel(f)
        step = centres_mel[1] - centres_mel[0]
        for b in range(n_bands):
            d = np.clip((fm - centres_mel[b]) / step, -1.0, 1.0)
            mask = np.cos(d * np.pi / 2.0)  # squares of neighbours sum to 1
            band = np.fft.irfft(spec * mask, n)
            out[t, b, :n] = band / math.sqrt(2.0)
    return out


class HarmonicNoiseSynth(nn.Module):
    """Frame parameters -> waveform at ``sample_rate``.

    forward(amps (B,K,k), noise (B,Nb,k), f0 (B,k) Hz, state) -> (wave (B, k*hop), state')
    Sample i of frame o is interpolated linearly between frame o-1 (weight 1 - i/hop) and
    frame o (weight i/hop); frame o's values hold exactly at sample (o+1)*hop.
    state: [prev_amps (B,K,1), prev_noise (B,Nb,1), prev_f0 (B,1), phase (B,1) float64,
            position (B,1) int64].
    """

    def __init__(self, sample_rate: int, hop: int, n_harmonics: int, n_bands: int, seed: int = 1234,
                 table_lengths: tuple[int, int] = (32768, 32749)) -> None:
        super().__init__()
        self.sample_rate, self.hop, self.n_harmonics, self.n_bands = sample_rate, hop, n_harmonics, n_bands
        self.lengths = table_lengths
        tables = torch.from_numpy(band_noise_tables(sample_rate, n_bands, table_lengths, seed))
        self.register_buffer("tables_t", tables.permute(0, 2, 1).contiguous(), persistent=False)  # (2, L, Nb)
        self.register_buffer("ramp", torch.arange(hop, dtype=torch.float32) / hop, persistent=False)
        self.register_buffer("k", torch.arange(1, n_harmonics + 1, dtype=torch.float32), persistent=False)

    def state_shapes(self, batch: int) -> list[tuple[int, ...]]:
        return [(batch, self.n_harmonics, 1), (batch, self.n_bands, 1), (batch, 1), (batch, 1), (batch, 1)]

    def init_state(self, batch: int = 1) -> list[torch.Tensor]:
        s = [torch.zeros(sh) for sh in self.state_shapes(batch)]
        s[3] = s[3].double()
        s[4] = s[4].long()
        return s

    def _interp(self, basis: torch.Tensor, prev: torch.Tensor, cur: torch.Tensor) -> torch.Tensor:
        """sum_c basis[b, o, i, c] * lerp(prev/cur frame gains)[c]  -> (B, k*hop).

        basis: (B, k, hop, C); prev: (B, C, 1); cur: (B, C, k). Done as one batched matmul
        per frame against [gains of frame o-1, gains of frame o] instead of upsampling the
        gains to audio rate.
        """
        B, k, H, C = basis.shape
        ext = torch.cat([prev, cur], dim=-1)  # (B,C,k+1)
        pair = torch.stack([ext[..., :-1], ext[..., 1:]], dim=-1)  # (B,C,k,2)
        pair = pair.permute(0, 2, 1, 3).reshape(B * k, C, 2)
        y = torch.bmm(basis.reshape(B * k, H, C), pair).reshape(B, k, H, 2)
        w = self.ramp[None, None, :]
        return (y[..., 0] + (y[..., 1] - y[..., 0]) * w).reshape(B, k * H)

    def forward(self, amps: torch.Tensor, noise: torch.Tensor, f0: torch.Tensor,
                state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        p_amp, p_noise, p_f0, phase, pos = state
        B, _, k = amps.shape
        H = self.hop
        # hold the last voiced f0 through unvoiced frames so the oscillator never glides to 0
        f0_filled = []
        last = p_f0[:, 0]
        for i in range(k):
            last = torch.where(f0[:, i] > 0, f0[:, i], last)
            f0_filled.append(last)
        f0h = torch.stack(f0_filled, dim=1) if k else f0
        ext = torch.cat([p_f0, f0h], dim=-1)
        f0_up = (ext[:, :-1, None] + (ext[:, 1:, None] - ext[:, :-1, None]) * self.ramp).reshape(B, k * H)
        inc = f0_up.double() * (2.0 * math.pi / self.sample_rate)
        ph = torch.remainder(phase + torch.cumsum(inc, dim=-1), 2.0 * math.pi)
        sines = torch.sin(ph.float()[..., None] * self.k).reshape(B, k, H, self.n_harmonics)
        harmonic = self._interp(sines, p_amp, amps)
        idx = pos + torch.arange(k * H, dtype=torch.long, device=pos.device)[None, :]  # (B,kH) absolute sample index
        table = self.tables_t[0][torch.remainder(idx, self.lengths[0])] + \
            self.tables_t[1][torch.remainder(idx, self.lengths[1])]  # (B,kH,Nb)
        nz = self._interp(table.reshape(B, k, H, self.n_bands), p_noise, noise)
        wave = harmonic + nz
        new_state = [amps[..., -1:], noise[..., -1:], f0h[:, -1:], ph[:, -1:], pos + k * self.hop]
        if k == 0:
            new_state = state
        return wave, new_state
