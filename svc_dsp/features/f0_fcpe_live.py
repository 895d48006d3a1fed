""""fcpe-live": FCPE as a streaming tracker over a short sliding window (25 ms lookahead by default).

The offline FCPE network (:mod:`svc_dsp.features.f0_fcpe`, same weights) reads +-0.92 s around a
frame. Here each network frame k (16 kHz, label time k * 10 ms, as offline FCPE) is computed from a
window of ``history_frames + 1`` mel frames, k - history_frames .. k, of 16 kHz audio cut at sample
``160 k + A``: samples after the cut count as zeros, so the newest mel frames are partial. The
network (and its GroupNorm statistics) sees only that window. Measured on sung clips with known F0
(docs/decisions.md): 8 frames of history lose nothing against the whole-signal network, and a cut
20 ms past the label keeps almost all of the accuracy; the cut is what sets the lookahead.

Resampling to 16 kHz is a fixed windowed sinc (Hann, +-1 ms, cut at 7.2 kHz) evaluated per output
sample, so block splits never change the result. Grid frame j (around sample (j + 1) * hop) takes
the nearest network frame, k = round((j + 1) * hop * 100 / sr); ``A`` is derived from the declared
``lookahead_seconds`` so that frame j never reads a native sample at or past
``(j + 1) * hop + lookahead_samples``. Decoding as offline FCPE (argmax +- 4 bins, weighted mean of
cents), restricted to f0_min..f0_max; voiced when the largest activation exceeds ``threshold``
(0.3 by default, not offline FCPE's 0.05: on the sung clips it halves false voicing, 13.1 -> 6.0 %,
for 1.7 points of raw pitch accuracy).
Cost: one network pass over the window per 10 ms, through onnxruntime by default (the graph is
exported in memory from the torch forward, once per tracker); see ``python -m benchmarks f0`` for RTF.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from svc_dsp.errors import AudioError, ParameterError
from svc_dsp.features.f0 import (F0Stream, F0Tracker, check_audio, check_f0_range, check_grid,
                                 register_f0_tracker, track_by_stream)
from svc_dsp.features.f0_fcpe import HOP, N_FFT, build_fcpe_net
from svc_dsp.features.f0_neural import local_average, onnx_session_of, slaney_mel
from svc_dsp.features.f0_weights import load_f0_weights

__all__ = ["FcpeLiveTracker", "FcpeWindowNet", "onnx_session", "sinc_table"]

NET_SR = 16000
_PAD = (N_FFT - HOP) // 2          # 432: mel frame m covers 16 kHz samples [160 m - 432, 160 m + 592)
_EMPTY = np.zeros(0, dtype=np.float32)


@functools.lru_cache(maxsize=8)
def sinc_table(sample_rate: int) -> tuple[np.ndarray, int, int]:
    """(table float64 (phases, 2K), K, g) for native -> 16 kHz: output sample m is
    ``sum_i x[b + i] * table[p, i + K - 1]`` over i = -K+1 .. K, with b = (m * sr) // 16000 and
    p = ((m * sr) % 16000) // g, g = gcd(sr, 16000). Windowed sinc, half-width K = ceil(1 ms * sr)."""
    sr = int(sample_rate)
    k = int(math.ceil(0.001 * sr))
    g = math.gcd(sr, NET_SR)
    phases = NET_SR // g
    fc = 0.9 * min(NET_SR / 2.0, sr / 2.0)
    w = k / sr
    frac = (np.arange(phases) * g / NET_SR)[:, None]                  # offset of m inside sample b
    d = (np.arange(-k + 1, k + 1)[None, :] - frac) / sr               # seconds, (phases, 2K)
    h = 2 * fc / sr * np.sinc(2 * fc * d) * np.where(np.abs(d) < w, 0.5 + 0.5 * np.cos(np.pi * d / w), 0.0)
    return h, k, g


class FcpeWindowNet:
    """The FCPE network for short windows: mel (B, T, 128) -> activations (B, 360) of the LAST frame.

    Same operations and weights as :func:`build_fcpe_net` (tests compare them), with the 1x1 and
    depthwise convolutions written as matrix products, which is several times faster for T ~ 10.
    """

    def __init__(self, w: dict[str, np.ndarray]) -> None:
        import torch

        net = build_fcpe_net(w)
        self.net = net

        def k3(conv: Any) -> tuple[Any, Any]:         # (out, in, 3) -> (3 * in, out) for [x(t-1), x(t), x(t+1)]
            return conv.weight.detach().permute(2, 1, 0).reshape(-1, conv.weight.shape[0]).contiguous(), \
                conv.bias.detach()

        self.c0, self.c1 = k3(net.c0), k3(net.c1)
        self.gn = (net.gn.weight.detach(), net.gn.bias.detach(), net.gn.eps)
        self.layers = [(m.norm.weight.detach(), m.norm.bias.detach(), m.norm.eps,
                        m.pw1.weight.detach()[:, :, 0].T.contiguous(), m.pw1.bias.detach(),
                        m.dw.weight.detach()[:, 0, :].T.contiguous(), m.dw.bias.detach(),
                        m.pw2.weight.detach()[:, :, 0].T.contiguous(), m.pw2.bias.detach()) for m in net.layers]
        self.norm = (net.norm.weight.detach(), net.norm.bias.detach(), net.norm.eps)
        self.proj = (net.proj.weight.detach().T.contiguous(), net.proj.bias.detach())
        self._toeplitz: dict[int, Any] = {}
        self._torch = torch

    def _dw_index(self, t: int) -> tuple[Any, Any]:
        """For window length t: tap index (t, t) into the 31-tap kernel and validity mask."""
        if t not in self._toeplitz:
            torch = self._torch
            d = torch.arange(t)[None, :] - torch.arange(t)[:, None] + 15        # [out t, in s] -> tap
            ok = (d >= 0) & (d <= 30)
            self._toeplitz[t] = (d.clamp(0, 30), ok)
        return self._toeplitz[t]

    def __call__(self, mel: Any) -> Any:
        torch = self._torch
        F = torch.nn.functional

        def conv3(x: Any, wb: tuple[Any, Any]) -> Any:           # x (B, T, C), zero padding 1
            p = F.pad(x, (0, 0, 1, 1))
            return torch.cat([p[:, :-2], p[:, 1:-1], p[:, 2:]], dim=2) @ wb[0] + wb[1]

        b, t, _ = mel.shape
        h = conv3(mel, self.c0)                                   # (B, T, 512)
        g = h.reshape(b, t, 4, 128)
        mean = g.mean(dim=(1, 3), keepdim=True)
        var = g.var(dim=(1, 3), keepdim=True, unbiased=False)
        h = ((g - mean) / torch.sqrt(var + self.gn[2])).reshape(b, t, 512) * self.gn[0] + self.gn[1]
        x = conv3(F.leaky_relu(h), self.c1)
        idx, ok = self._dw_index(t)
        for i, (nw, nb, eps, w1, b1, wd, bd, w2, b2) in enumerate(self.layers):
            y = F.glu(F.layer_norm(x, (512,), nw, nb, eps) @ w1 + b1, dim=2)      # (B, T, 1024)
            kern = wd[idx] * ok[:, :, None]                                         # (T, T, 1024)
            if i == len(self.layers) - 1:                         # only the last frame is needed further
                y = torch.einsum("bsc,sc->bc", y, kern[-1])[:, None, :] + bd
                x = x[:, -1:]
            else:
                y = torch.einsum("bsc,tsc->btc", y, kern) + bd
            x = x + F.silu(y) @ w2 + b2
        x = F.layer_norm(x[:, -1], (512,), *self.norm[:2], self.norm[2])
        return torch.sigmoid(x @ self.proj[0] + self.proj[1])


def onnx_session(net: FcpeWindowNet, history_frames: int) -> Any:
    """An onnxruntime session (one thread) of ``net`` for windows of ``history_frames + 1`` frames:
    input "x" (B, T, 128) float32, output (B, 360). Measured about 1.9x faster than the torch forward
    at T = 9 (docs/decisions.md)."""
    import torch

    class _Wrap(torch.nn.Module):
        def forward(self, mel: Any) -> Any:
            return net(mel)

    return onnx_session_of(_Wrap(), torch.zeros(1, history_frames + 1, 128))


class _FcpeLiveStream(F0Stream):
    def __init__(self, tracker: FcpeLiveTracker, sample_rate: int, hop: int, f0_min: float, f0_max: float) -> None:
        self.sample_rate, self.hop, _ = check_grid(sample_rate, hop)
        self.f0_min, self.f0_max = check_f0_range(f0_min, f0_max, self.sample_rate)
        self.lookahead_samples = tracker.lookahead_samples(self.sample_rate)
        self.table, self.k, self.g = sinc_table(self.sample_rate)
        self.cut = tracker.cut_samples(self.sample_rate)
        self.history = tracker.history_frames
        self.threshold = tracker.threshold
        self.net = tracker.window_net()
        self.session = tracker.session()
        self.cents = tracker.cents()
        hz = 10.0 * 2.0 ** (self.cents / 1200.0)
        self.in_range = (hz >= self.f0_min) & (hz <= self.f0_max)
        self.mel_fb = slaney_mel(NET_SR, N_FFT, 128, 0.0, 8000.0).astype(np.float64).T   # (513, 128)
        import torch
        self.hann = torch.hann_window(N_FFT, dtype=torch.float64).numpy()
        self.reset()

    @property
    def frames_emitted(self) -> int:
        return self._next

    def reset(self) -> None:
        self._x = np.zeros(self.k, dtype=np.float64)                 # native samples [xbase, ...)
        self._xbase = -self.k
        self._n_in = 0
        pre = _PAD + HOP * self.history
        self._y = np.zeros(pre, dtype=np.float64)                    # 16 kHz samples [ybase, ...)
        self._ybase = -pre
        self._m = 0                                                  # next 16 kHz sample to compute
        self._next = 0
        self._net_f0: dict[int, float] = {}

    def _resample(self) -> None:
        if self.sample_rate == NET_SR:
            self._y = np.concatenate([self._y, self._x[self._m - self._xbase:]])
            self._m = self._xbase + self._x.shape[0]
            return
        sr, k = self.sample_rate, self.k
        m_end = max(0, -(-(self._n_in - k) * NET_SR // sr))
        if m_end <= self._m:
            return
        m = np.arange(self._m, m_end, dtype=np.int64)
        prod = m * sr
        b, p = prod // NET_SR, (prod % NET_SR) // self.g
        idx = b[:, None] + np.arange(-k + 1, k + 1)[None, :] - self._xbase
        y = (self._x[idx] * self.table[p]).sum(axis=1)
        self._y = np.concatenate([self._y, y])
        self._m = m_end

    def _mel(self, ks: np.ndarray) -> np.ndarray:
        """(len(ks), H + 1, 128) float32 log-mel windows of network frames ks."""
        h = self.history
        start = HOP * (ks[:, None, None] + np.arange(-h, 1)[None, :, None]) - _PAD + np.arange(N_FFT)[None, None, :]
        idx = np.minimum(start - self._ybase, self._y.shape[0] - 1)     # past the end: masked below
        fr = self._y[idx] * (start < (HOP * ks + self.cut)[:, None, None])
        spec = np.fft.rfft(fr * self.hann, axis=-1)
        mag = np.sqrt(spec.real ** 2 + spec.imag ** 2 + 1e-9)
        return np.log(np.maximum(mag @ self.mel_fb, 1e-5)).astype(np.float32)

    def _compute(self, ks: np.ndarray) -> None:
        import torch

        mel = self._mel(ks)
        if self.session is not None:
            act = self.session.run(None, {"x": mel})[0]
        else:
            with torch.inference_mode():
                act = self.net(torch.from_numpy(mel)).numpy()
        act = np.where(self.in_range, act, 0.0)
        centre = np.argmax(act, axis=1)
        cents = local_average(act, centre, self.cents, 4)
        conf = act[np.arange(act.shape[0]), centre]
        f0 = np.where(conf > self.threshold, 10.0 * 2.0 ** (cents / 1200.0), 0.0)
        for k, v in zip(ks.tolist(), f0.tolist()):
            self._net_f0[k] = v

    def push(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block)
        if x.ndim != 1:
            raise AudioError(f"push needs a mono block of shape (n,); received shape {x.shape}")
        x = np.nan_to_num(x.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        self._x = np.concatenate([self._x, x])
        self._n_in += x.shape[0]
        self._resample()
        la, hop, sr = self.lookahead_samples, self.hop, self.sample_rate
        done = (self._n_in - la) // hop if self._n_in >= la else 0
        if done <= self._next:
            return _EMPTY.copy()
        js = np.arange(self._next, done, dtype=np.int64)
        ks = ((js + 1) * hop * 200 + sr) // (2 * sr)                # nearest 10 ms network frame
        new = np.unique(ks[[k not in self._net_f0 for k in ks.tolist()]])
        if new.shape[0]:
            self._compute(new)
        out = np.array([self._net_f0[k] for k in ks.tolist()], dtype=np.float32)
        self._next = done
        # forget what the next frames cannot read
        k_next = int(((done + 1) * hop * 200 + sr) // (2 * sr))
        for k in [k for k in self._net_f0 if k < k_next - 1]:
            del self._net_f0[k]
        ydrop = HOP * (k_next - self.history) - _PAD - self._ybase
        if ydrop > 0:
            self._y = self._y[ydrop:]
            self._ybase += ydrop
        xkeep = (self._m * sr) // NET_SR - self.k + 1 if sr != NET_SR else self._m
        xdrop = xkeep - self._xbase
        if xdrop > 0:
            self._x = self._x[xdrop:]
            self._xbase += xdrop
        return out


@register_f0_tracker
class FcpeLiveTracker(F0Tracker):
    """FCPE over a sliding window, streaming (see the module docstring).

    lookahead_seconds: declared lookahead (0.015 .. 0.060 s); history_frames: 10 ms mel frames of
    history in the window (2 .. 64); threshold: largest activation needed for a voiced frame (0..1);
    backend: "onnx" (onnxruntime, the default; faster) or "torch" (same network, to float rounding).
    """

    name = "fcpe-live"
    streaming = True
    weights_name = "fcpe"

    def __init__(self, lookahead_seconds: float = 0.025, history_frames: int = 8, threshold: float = 0.3,
                 backend: str = "onnx") -> None:
        if not 0.015 <= float(lookahead_seconds) <= 0.060:
            raise ParameterError(f"fcpe-live lookahead_seconds={lookahead_seconds!r}; allowed 0.015..0.060")
        if isinstance(history_frames, bool) or int(history_frames) != history_frames or not 2 <= history_frames <= 64:
            raise ParameterError(f"fcpe-live history_frames={history_frames!r}; allowed whole numbers 2..64")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ParameterError(f"fcpe-live threshold={threshold!r}; allowed 0..1")
        if backend not in ("onnx", "torch"):
            raise ParameterError(f"fcpe-live backend={backend!r}; allowed 'onnx' (onnxruntime) or 'torch'")
        self.backend = backend
        self._session: Any = None
        self.lookahead_seconds = float(lookahead_seconds)
        self.history_frames = int(history_frames)
        self.threshold = float(threshold)
        self._net: FcpeWindowNet | None = None
        self._cents: np.ndarray | None = None

    def cut_samples(self, sample_rate: int) -> int:
        """A: 16 kHz samples after a network frame's label time that its window reads (the rest are zeros)."""
        sr = int(sample_rate)
        k = sinc_table(sr)[1] if sr != NET_SR else 0
        return (self.lookahead_samples(sr) - k - 1) * NET_SR // sr - (HOP // 2 - 1)

    def window_net(self) -> FcpeWindowNet:
        if self._net is None:
            w = load_f0_weights(self.weights_name)
            self._cents = w["cent_table"].astype(np.float64)
            self._net = FcpeWindowNet(w)
        return self._net

    def session(self) -> Any:
        """The onnxruntime session of the window network (backend "onnx"), or None (backend "torch")."""
        if self.backend == "onnx" and self._session is None:
            self._session = onnx_session(self.window_net(), self.history_frames)
        return self._session

    def net(self) -> Any:
        """Load the weights (and export the ONNX graph) now; the benchmark calls it before timing."""
        self.session()
        return self.window_net()                     # loaded before timing by the benchmark

    def cents(self) -> np.ndarray:
        self.window_net()
        assert self._cents is not None
        return self._cents

    def stream(self, sample_rate: int, hop: int, f0_min: float = 50.0, f0_max: float = 1100.0) -> _FcpeLiveStream:
        return _FcpeLiveStream(self, sample_rate, hop, f0_min, f0_max)

    def track(self, audio: np.ndarray, sample_rate: int, hop: int, n_frames: int,
              f0_min: float = 50.0, f0_max: float = 1100.0) -> np.ndarray:
        sample_rate, hop, n_frames = check_grid(sample_rate, hop, n_frames)
        x = check_audio(audio)
        return track_by_stream(self.stream(sample_rate, hop, f0_min, f0_max), x, hop, n_frames,
                               chunk_frames=256)
