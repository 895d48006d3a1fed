"""FCPE F0 tracker "fcpe" (torchfcpe 0.0.4's fcpe_c_v001, MIT; so-vits-svc 4.1's ``-f0p fcpe``), offline.

Front end: 16 kHz audio reflect-padded by 432 samples each side, STFT (n_fft = window = 1024, Hann,
hop 160, no centring), magnitude ``sqrt(re^2 + im^2 + 1e-9)``, 128 Slaney mel bands 0-8 kHz,
``log(max(., 1e-5))``; frame k is centred on sample 160 k + 80.
Network (conv-only CFNaiveMelPE): Conv1d(128->512, 3) -> GroupNorm(4) -> LeakyReLU -> Conv1d(512, 3);
six residual Conformer convolution modules (LayerNorm -> 1x1 Conv to 2048 -> GLU -> depthwise
Conv k31 -> SiLU -> 1x1 Conv to 512); LayerNorm; weight-normed Linear(512->360); sigmoid.
Decoding as torchfcpe's "local_argmax": activation-weighted mean of the cents of argmax +- 4 bins;
unvoiced where the largest activation is <= ``threshold`` (so-vits-svc uses 0.05). Frame k is read
as time k * 10 ms, as torchfcpe and so-vits-svc do.
The receptive field is +-92 frames (0.92 s), so it is offline only; long inputs run in chunks with
that much context on each side after the GroupNorm (whose statistics are taken over the whole
clip, as in one pass), so the result equals one pass.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from svc_dsp.errors import ParameterError
from svc_dsp.features.f0 import register_f0_tracker
from svc_dsp.features.f0_neural import OfflineNeuralTracker, local_average, slaney_mel
from svc_dsp.features.f0_weights import load_f0_weights

__all__ = ["FcpeTracker", "build_fcpe_net", "fcpe_mel"]

N_FFT, HOP, N_MELS = 1024, 160, 128
_PAD = (N_FFT - HOP) // 2
RECEPTIVE_BACK = 1 + 6 * 15     # frames of context either side that the part after GroupNorm reads


def fcpe_mel(x16: np.ndarray) -> np.ndarray:
    """float32 (T, 128) log-mel of 16 kHz audio, T = len // 160 + 1 (torchfcpe's Wav2Mel)."""
    import torch

    x = torch.from_numpy(np.asarray(x16, np.float32))[None, None, :]
    mode = "reflect" if x.shape[-1] > _PAD + 1 else "constant"
    y = torch.nn.functional.pad(x, (_PAD, _PAD + (x.shape[-1] < N_FFT) * N_FFT), mode=mode)[0]
    spec = torch.stft(y, N_FFT, hop_length=HOP, win_length=N_FFT, window=torch.hann_window(N_FFT),
                      center=False, return_complex=True)
    mag = torch.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
    mel = torch.matmul(torch.from_numpy(slaney_mel(16000, N_FFT, N_MELS, 0.0, 8000.0)), mag)
    mel = torch.log(torch.clamp(mel, min=1e-5))[0].T.numpy()
    n = x16.shape[0] // HOP + 1
    if mel.shape[0] < n:
        mel = np.concatenate([mel, np.repeat(mel[-1:], n - mel.shape[0], axis=0)])
    return np.ascontiguousarray(mel[:n], dtype=np.float32)


def build_fcpe_net(w: dict[str, np.ndarray]) -> Any:
    """torch module: mel (B, T, 128) -> activations (B, T, 360) in 0..1."""
    import torch
    from torch import nn

    def t(key: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(w[key]))

    class ConvModule(nn.Module):
        def __init__(self, p: str) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(512)
            self.pw1 = nn.Conv1d(512, 2048, 1)
            self.dw = nn.Conv1d(1024, 1024, 31, padding=15, groups=1024)
            self.pw2 = nn.Conv1d(1024, 512, 1)
            for mod, k in ((self.norm, "0"), (self.pw1, "2"), (self.dw, "4.conv"), (self.pw2, "6")):
                mod.weight.data.copy_(t(f"{p}.{k}.weight"))
                mod.bias.data.copy_(t(f"{p}.{k}.bias"))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.norm(x).transpose(1, 2)
            h = torch.nn.functional.glu(self.pw1(h), dim=1)
            h = torch.nn.functional.silu(self.dw(h))
            return self.pw2(h).transpose(1, 2)

    class FcpeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c0 = nn.Conv1d(128, 512, 3, padding=1)
            self.gn = nn.GroupNorm(4, 512)
            self.c1 = nn.Conv1d(512, 512, 3, padding=1)
            for mod, k in ((self.c0, "input_stack.0"), (self.gn, "input_stack.1"), (self.c1, "input_stack.3")):
                mod.weight.data.copy_(t(f"{k}.weight"))
                mod.bias.data.copy_(t(f"{k}.bias"))
            self.layers = nn.ModuleList(ConvModule(f"net.encoder_layers.{i}.conformer.net") for i in range(6))
            self.norm = nn.LayerNorm(512)
            self.norm.weight.data.copy_(t("norm.weight"))
            self.norm.bias.data.copy_(t("norm.bias"))
            v, g = w["output_proj.weight_v"], w["output_proj.weight_g"]
            weight = g * v / np.linalg.norm(v, axis=1, keepdims=True)
            self.proj = nn.Linear(512, 360)
            self.proj.weight.data.copy_(torch.from_numpy(weight.astype(np.float32)))
            self.proj.bias.data.copy_(t("output_proj.bias"))

        def front(self, mel: torch.Tensor) -> torch.Tensor:
            """(B, T, 128) -> (B, 512, T): the part with GroupNorm, whose statistics span the whole clip."""
            return torch.nn.functional.leaky_relu(self.gn(self.c0(mel.transpose(1, 2))))

        def back(self, h: torch.Tensor) -> torch.Tensor:
            """(B, 512, T) -> (B, T, 360); each frame depends on +-RECEPTIVE_BACK frames of h."""
            x = self.c1(h).transpose(1, 2)
            for layer in self.layers:
                x = x + layer(x)
            return torch.sigmoid(self.proj(self.norm(x)))

        def forward(self, mel: torch.Tensor) -> torch.Tensor:
            return self.back(self.front(mel))

    return FcpeNet().eval()


@register_f0_tracker
class FcpeTracker(OfflineNeuralTracker):
    """FCPE (see the module docstring). threshold: largest activation (0..1) needed for a voiced frame."""

    name = "fcpe"
    weights_name = "fcpe"
    context_seconds = 0.05

    def __init__(self, threshold: float = 0.05, chunk_frames: int = 4000) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ParameterError(f"fcpe threshold={threshold!r}; allowed 0..1")
        self.threshold, self.chunk = float(threshold), max(64, int(chunk_frames))
        self._net: Any = None
        self._cents: np.ndarray | None = None

    def net(self) -> Any:
        if self._net is None:
            w = load_f0_weights(self.weights_name)
            self._cents = w["cent_table"].astype(np.float64)
            self._net = build_fcpe_net(w)
        return self._net

    def activations(self, x16: np.ndarray) -> np.ndarray:
        """(T, 360) activations of 16 kHz audio, frame k centred on sample 160 k + 80."""
        import torch

        mel = fcpe_mel(x16)
        net = self.net()
        out = np.empty((mel.shape[0], 360), np.float32)
        with torch.inference_mode():
            h = net.front(torch.from_numpy(mel[None]))
            for s in range(0, mel.shape[0], self.chunk):
                a, b = max(0, s - RECEPTIVE_BACK), min(mel.shape[0], s + self.chunk + RECEPTIVE_BACK)
                y = net.back(h[:, :, a:b])[0].numpy()
                out[s:s + self.chunk] = y[s - a:s - a + min(self.chunk, mel.shape[0] - s)]
        return out

    def analyse(self, x: np.ndarray, f0_min: float, f0_max: float) -> tuple[np.ndarray, np.ndarray]:
        act = self.activations(x)
        assert self._cents is not None
        centre = np.argmax(act, axis=1)
        cents = local_average(act, centre, self._cents, 4)
        conf = act[np.arange(act.shape[0]), centre]
        f0 = np.where(conf > self.threshold, 10.0 * 2.0 ** (cents / 1200.0), 0.0)
        # torchfcpe labels frame k with time k * 10 ms (measured: aligning it with its window centre,
        # 5 ms later, doubles the frames more than 100 cents off on sung clips)
        times = np.arange(act.shape[0]) * HOP / self.net_rate
        return times, f0
