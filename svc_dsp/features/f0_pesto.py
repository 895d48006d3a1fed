"""PESTO F0 tracker "pesto" (pesto-pitch 2.0.1's mir-1k_g7, trained on MIR-1K singing): streaming.

Front end (nnAudio-style CQT as in pesto, kernels built at the input's own sample rate): 251 bins,
36 per octave from 27.5 Hz (bin-centred), gamma 7, periodic Hann, L1-normalised kernels of
width ``K = 2^ceil(log2(longest kernel))`` centred on the frame; output scaled by sqrt(kernel
length); ``20 log10 |c|`` (floored at float32 eps). For frame j the kernel is centred on sample
``(j + 1) * hop`` and samples later than ``lookahead_seconds`` after it count as zeros (pesto's
streaming CQT does the same with its "mirror" zeros), so the tracker reads at most that far ahead.
Network (Resnet1d, 0.13 M parameters): LayerNorm over the 219 cropped bins of ``2 ln |c|``; Conv1d
k39 to 40 channels, two residual k39 layers, 1x1 convs 40-30-30-10-3 (LeakyReLU 0.3); a Toeplitz
layer to 384 bins (1/3 semitone) and softmax; pitch = argmax +- 2 bins weighted mean, shifted by
the model's stored offset. Voicing: pesto's confidence head (spectral flatness + a small conv on
|c|^2) >= ``threshold``.

Cost: the network runs on every k-th grid frame, ``k = max(1, floor(net_hop_seconds * sr / hop))``
(10 ms by default, pesto's own step); the frames in between hold the last computed value, so F0
is at most ``(k - 1) * hop`` samples late and the lookahead does not grow.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from svc_dsp.errors import AudioError, ParameterError
from svc_dsp.features.f0 import (F0Stream, F0Tracker, check_audio, check_f0_range, check_grid,
                                 register_f0_tracker, track_by_stream)
from svc_dsp.features.f0_weights import load_f0_weights

__all__ = ["PestoStream", "PestoTracker", "build_pesto_net", "pesto_kernels"]

BPS, N_BINS, GAMMA, CROP = 3, 251, 7.0, 16
_EMPTY = np.zeros(0, dtype=np.float32)
MAX_LOOKAHEAD_S = 0.020


@functools.lru_cache(maxsize=8)
def pesto_kernels(sample_rate: int) -> tuple[np.ndarray, int]:
    """(kernel matrix float32 (K, 2 * 251): real parts then -imag parts, times sqrt(length); K)."""
    from scipy.signal import get_window

    fmin = 27.5 / 2 ** ((BPS - 1) / (24 * BPS))
    bpo = 12 * BPS
    q = 1.0 / (2 ** (1 / bpo) - 1)
    alpha = 2.0 ** (1.0 / bpo) - 1.0
    freqs = fmin * 2.0 ** (np.arange(N_BINS) / bpo)
    if freqs[-1] > sample_rate / 2:
        raise ParameterError(f"'pesto' needs a sample rate above {2 * freqs[-1]:.0f} Hz; received {sample_rate}")
    lengths = np.ceil(q * sample_rate / (freqs + GAMMA / alpha))
    k_len = int(2 ** np.ceil(np.log2(lengths.max())))
    mat = np.zeros((k_len, 2 * N_BINS), dtype=np.float64)
    for b in range(N_BINS):
        ln = lengths[b]
        start = int(np.ceil(k_len / 2.0 - ln / 2.0)) - (1 if ln % 2 == 1 else 0)
        win = get_window("hann", int(ln), fftbins=True)
        sig = win * np.exp(np.r_[-ln // 2: ln // 2] * 1j * 2 * np.pi * freqs[b] / sample_rate) / ln
        sig = sig / np.linalg.norm(sig, 1)
        scale = math.sqrt(ln)
        mat[start:start + int(ln), b] = sig.real * scale
        mat[start:start + int(ln), N_BINS + b] = -sig.imag * scale
    return mat.astype(np.float32), k_len


def build_pesto_net(w: dict[str, np.ndarray]) -> Any:
    """torch module: log-magnitude CQT (N, 251) in dB -> (pitch in MIDI (N,), confidence (N,))."""
    import torch
    from torch import nn

    f = torch.nn.functional

    def t(key: str) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(w[key], dtype=np.float32))

    class PestoNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.ln_w, self.ln_b = t("encoder.layernorm.weight"), t("encoder.layernorm.bias")
            self.convs = [(t("encoder.conv1.0.weight"), t("encoder.conv1.0.bias"))]
            self.prefilt = [(t(f"encoder.prefilt_layers.{i}.0.weight"), t(f"encoder.prefilt_layers.{i}.0.bias"))
                            for i in range(2)]
            self.pointwise = [(t(f"encoder.conv_layers.{i}.weight"), t(f"encoder.conv_layers.{i}.bias"))
                              for i in (0, 3, 6, 9)]
            self.fc = t("encoder.fc.weight")
            self.conf_w, self.conf_b = t("confidence.conv.weight"), t("confidence.conv.bias")
            self.lin_w, self.lin_b = t("confidence.linear.weight"), t("confidence.linear.bias")
            self.shift = int(round(float(np.ravel(w["shift"])[0]) * BPS))

        def forward(self, db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            x = db * (math.log(10) / 10.0)                    # pesto scales in place: 2 ln|c|
            energy = torch.exp(x)                              # |c|^2
            geo = energy.log().mean(dim=-1, keepdim=True).exp()
            flat = geo / energy.mean(dim=-1, keepdim=True).clamp(min=1e-8)
            c = f.relu(f.conv1d(energy[:, None], self.conf_w, self.conf_b, stride=3))[:, 0]
            conf = torch.sigmoid(f.linear(torch.cat((c, flat), dim=-1), self.lin_w, self.lin_b))[:, 0]
            h = x[:, None, CROP:N_BINS - CROP]
            h = f.layer_norm(h, list(h.shape[1:]), self.ln_w, self.ln_b)
            h = f.leaky_relu(f.conv1d(h, *self.convs[0], padding=19), 0.3)
            for wt, b in self.prefilt:
                h = f.leaky_relu(f.conv1d(h, wt, b, padding=19), 0.3) + h
            for wt, b in self.pointwise:
                h = f.leaky_relu(f.conv1d(h, wt, b), 0.3)
            h = h.flatten(1)[:, None]
            act = f.conv1d(h, self.fc, padding=self.fc.shape[-1] - h.shape[-1])[:, 0]
            act = torch.softmax(act, dim=-1).roll(-self.shift, -1)
            centre = act.argmax(dim=-1, keepdim=True)
            idx = (centre + torch.arange(-(BPS - 1), BPS)).clamp(0, act.shape[-1] - 1)
            a = act.gather(-1, idx)
            pitch = (a * idx.float() / BPS).sum(-1) / a.sum(-1)
            return pitch, conf

    return PestoNet().eval()


class PestoStream(F0Stream):
    """Live "pesto" F0. Frames equal :meth:`PestoTracker.track`'s to float32 rounding (numpy/torch
    batch kernels may round differently for different batch sizes), whatever the block sizes."""

    def __init__(self, tracker: PestoTracker, sample_rate: int, hop: int, f0_min: float, f0_max: float) -> None:
        self.sample_rate, self.hop, _ = check_grid(sample_rate, hop)
        self.f0_min, self.f0_max = check_f0_range(f0_min, f0_max, self.sample_rate)
        self.lookahead_samples = tracker.lookahead_samples(self.sample_rate)
        mat, k_len = pesto_kernels(self.sample_rate)
        self.half = k_len // 2
        self.taps = self.half + self.lookahead_samples
        self.mat = np.ascontiguousarray(mat[:self.taps])
        self.every = max(1, int(math.floor(tracker.net_hop_seconds * self.sample_rate / self.hop)))
        self.threshold = tracker.threshold
        self.net = tracker.net()
        self.reset()

    @property
    def frames_emitted(self) -> int:
        return self._next

    def reset(self) -> None:
        self._buf = np.zeros(self.taps, dtype=np.float32)     # samples [base, base + len)
        self._base = -self.taps
        self._n_in = 0
        self._next = 0
        self._last = 0.0

    def push(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block)
        if x.ndim != 1:
            raise AudioError(f"push needs a mono block of shape (n,); received shape {x.shape}")
        x = np.nan_to_num(x.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
        self._buf = np.concatenate([self._buf, x])
        self._n_in += x.shape[0]
        L, hop = self.lookahead_samples, self.hop
        done = (self._n_in - L) // hop if self._n_in >= L else 0
        if done <= self._next:
            return _EMPTY.copy()
        js = np.arange(self._next, done)
        comp = js[js % self.every == 0]
        out = np.empty(js.shape[0], dtype=np.float32)
        vals = np.zeros(0, dtype=np.float32)
        if comp.shape[0]:
            starts = (comp + 1) * hop - self.half - self._base
            segs = self._buf[starts[:, None] + np.arange(self.taps)[None, :]]
            vals = self._values(segs @ self.mat)
        k = 0
        last = self._last
        for i, j in enumerate(js.tolist()):
            if j % self.every == 0:
                last = float(vals[k])
                k += 1
            out[i] = last
        self._last = last
        self._next = done
        keep_from = (done + 1) * hop - self.half          # first sample the next frame reads
        drop = keep_from - self._base
        if drop > 0:
            self._buf = self._buf[drop:]
            self._base += drop
        return out

    def _values(self, c: np.ndarray) -> np.ndarray:
        """Front-end output (frames, 2 * 251) -> F0 in Hz per frame, 0 where unvoiced."""
        import torch

        mag = np.sqrt(c[:, :N_BINS] ** 2 + c[:, N_BINS:] ** 2)
        db = 20.0 * np.log10(np.maximum(mag, np.finfo(np.float32).eps))
        with torch.inference_mode():
            pitch, conf = self.net(torch.from_numpy(db.astype(np.float32)))
        hz = 440.0 * 2.0 ** ((pitch.numpy().astype(np.float64) - 69.0) / 12.0)
        ok = (conf.numpy() >= self.threshold) & (hz >= self.f0_min) & (hz <= self.f0_max)
        return np.where(ok, hz, 0.0).astype(np.float32)


@register_f0_tracker
class PestoTracker(F0Tracker):
    """PESTO (see the module docstring).

    lookahead_seconds: how far past each frame's centre the CQT reads (0 .. 0.020 s).
    threshold: confidence (0..1) needed for a voiced frame.
    net_hop_seconds: the network runs on grid frames about this far apart.
    """

    name = "pesto"
    streaming = True
    weights_name = "pesto"

    def __init__(self, lookahead_seconds: float = 0.010, threshold: float = 0.5,
                 net_hop_seconds: float = 0.010) -> None:
        if not 0.0 <= float(lookahead_seconds) <= MAX_LOOKAHEAD_S:
            raise ParameterError(f"pesto lookahead_seconds={lookahead_seconds!r}; allowed 0..{MAX_LOOKAHEAD_S}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ParameterError(f"pesto threshold={threshold!r}; allowed 0..1")
        if not 0.0 <= float(net_hop_seconds) <= 0.05:
            raise ParameterError(f"pesto net_hop_seconds={net_hop_seconds!r}; allowed 0..0.05")
        self.lookahead_seconds = float(lookahead_seconds)
        self.threshold, self.net_hop_seconds = float(threshold), float(net_hop_seconds)
        self._net: Any = None

    def net(self) -> Any:
        if self._net is None:
            self._net = build_pesto_net(load_f0_weights(self.weights_name))
        return self._net

    def stream(self, sample_rate: int, hop: int, f0_min: float = 50.0, f0_max: float = 1100.0) -> PestoStream:
        return PestoStream(self, sample_rate, hop, f0_min, f0_max)

    def track(self, audio: np.ndarray, sample_rate: int, hop: int, n_frames: int,
              f0_min: float = 50.0, f0_max: float = 1100.0) -> np.ndarray:
        sample_rate, hop, n_frames = check_grid(sample_rate, hop, n_frames)
        x = check_audio(audio)
        return track_by_stream(self.stream(sample_rate, hop, f0_min, f0_max), x, hop, n_frames,
                               dtype=np.float32, chunk_frames=256)
