"""Whisper's audio encoder in plain PyTorch: log-mel front end and transformer (OpenAI tensor names).

Front end (OpenAI ``log_mel_spectrogram``): 16 kHz, STFT n_fft 400, hop 160, periodic Hann, centred
with reflect padding, power, the last frame dropped; 80 Slaney-normalised mel filters on a Slaney
mel scale (librosa ``filters.mel(sr=16000, n_fft=400, n_mels=80)``); log10 clamped at 1e-10,
floored at max - 8, then (x + 4) / 4. N samples give N // 160 mel frames.

Encoder: conv1 (k 3, pad 1) + GELU, conv2 (k 3, stride 2, pad 1) + GELU, + the sinusoidal
positional table sliced to the input length (no 30 s padding), pre-LN blocks (attention with
q and k scaled by head_dim^-1/4, key without bias; MLP 4d with GELU); ``ln_post`` after the last
block. L mel frames give ceil(L / 2) output frames: 50 per second.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
MAX_CTX = 1500  # output frames the positional table covers (30 s)


def slaney_mel_filters(sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """float32 (n_mels, n_fft//2+1): librosa's default (Slaney scale, 'slaney' area norm), fmax = sr/2."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz2mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)

    def mel2hz(m: np.ndarray) -> np.ndarray:
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_f = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    mel_f = mel2hz(np.linspace(hz2mel(np.array(0.0)), hz2mel(np.array(sample_rate / 2)), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return w.astype(np.float32)


class WhisperLogMel(nn.Module):
    """audio (B, N) float32 at 16 kHz -> log10 power mel (B, 80, N // 160), before the floor."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("filters", torch.from_numpy(slaney_mel_filters()), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(audio, N_FFT, HOP, window=self.window, return_complex=True)
        power = spec[..., :-1].abs() ** 2
        return torch.clamp(self.filters @ power, min=1e-10).log10()


def normalize_log_mel(log_mel: torch.Tensor, ceiling: float | None = None) -> torch.Tensor:
    """Whisper's floor (max - 8, the max over the whole input unless ``ceiling`` fixes it) and scaling."""
    top = log_mel.amax() if ceiling is None else torch.tensor(float(ceiling), dtype=log_mel.dtype)
    return (torch.maximum(log_mel, top - 8.0) + 4.0) / 4.0


class _Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.query, self.key = nn.Linear(d, d), nn.Linear(d, d, bias=False)
        self.value, self.out = nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        hd = d // self.heads
        scale = hd ** -0.25

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, hd).transpose(1, 2)

        q, k, v = split(self.query(x) * scale), split(self.key(x) * scale), split(self.value(x))
        w = torch.softmax((q @ k.transpose(-2, -1)).float(), dim=-1).to(q.dtype)
        return self.out((w @ v).transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attn, self.attn_ln = _Attention(d, heads), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.mlp_ln = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoderNet(nn.Module):
    """Normalised log-mel (B, 80, L) -> features (B, ceil(L/2), d) after block ``n_layers``
    (and ``ln_post`` when ``final_norm``). Holds only the blocks it runs."""

    def __init__(self, d: int, heads: int, n_layers: int, final_norm: bool, n_ctx: int = MAX_CTX) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(N_MELS, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(n_ctx, d))
        self.blocks = nn.ModuleList(_Block(d, heads) for _ in range(n_layers))
        self.ln_post = nn.LayerNorm(d) if final_norm else None

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).transpose(1, 2)
        x = x + self.positional_embedding[: x.shape[1]].to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x) if self.ln_post is not None else x


def expected_shapes(d: int, n_layers: int, final_norm: bool, n_ctx: int = MAX_CTX) -> dict[str, tuple[int, ...]]:
    """Tensor names (OpenAI's, without the ``encoder.`` prefix) and shapes an encoder folder holds."""
    with torch.device("meta"):
        net = WhisperEncoderNet(d, max(1, d // 64), n_layers, final_norm, n_ctx)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def build_net(tensors: Mapping[str, np.ndarray], heads: int, n_layers: int, final_norm: bool) -> WhisperEncoderNet:
    """A float32 network whose every parameter comes from ``tensors`` (shapes already checked)."""
    d = int(tensors["conv1.weight"].shape[0])
    n_ctx = int(tensors["positional_embedding"].shape[0])
    with torch.device("meta"):
        net = WhisperEncoderNet(d, heads, n_layers, final_norm, n_ctx)
    sd = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in tensors.items()}
    net.load_state_dict(sd, assign=True)
    return net.eval()
