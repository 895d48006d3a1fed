"""Shared parts of the neural F0 trackers (CREPE, FCPE, PESTO): pitch-bin decoding, Viterbi
smoothing, the Slaney mel filterbank, and the offline base that maps a network's own frames
onto the engine's frame grid.

Offline networks run at their own rate and hop (16 kHz, 10 ms); :class:`OfflineNeuralTracker`
resamples the input, lets the subclass analyse it, then reads each grid frame (around sample
``(j + 1) * hop``) off the network's frames: voicing from the nearest network frame, F0
interpolated in log-frequency between the two neighbouring network frames when both are voiced.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from svc_dsp.features.f0 import F0Tracker, check_audio, check_f0_range, check_grid

__all__ = ["OfflineNeuralTracker", "grid_from_net_frames", "local_average", "onnx_session_of", "slaney_mel",
           "viterbi_path"]


def onnx_session_of(module: Any, example: Any) -> Any:
    """An onnxruntime session (one thread) of the torch ``module`` (one float32 input "x" whose first
    axis is the batch, one output), exported in memory with ``example`` as the traced input."""
    import io
    import warnings

    import onnxruntime as ort
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buf, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}}, opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])


def local_average(act: np.ndarray, centre: np.ndarray, values: np.ndarray, radius: int) -> np.ndarray:
    """Activation-weighted mean of ``values`` over bins ``centre - radius .. centre + radius``.

    act: (T, B) non-negative activations; centre: (T,) int bins; values: (B,) e.g. cents per bin.
    Returns (T,) float64. Bins outside 0..B-1 are clipped (repeated), as CREPE/FCPE do.
    """
    t, b = act.shape
    idx = np.clip(centre[:, None] + np.arange(-radius, radius + 1)[None, :], 0, b - 1)
    w = np.take_along_axis(act, idx, axis=1).astype(np.float64)
    s = w.sum(axis=1)
    s[s <= 0] = 1e-12
    return (w * values[idx]).sum(axis=1) / s


def viterbi_path(prob: np.ndarray, max_jump: int = 12) -> np.ndarray:
    """Most likely bin sequence through per-frame probabilities (T, B).

    Transition weights are triangular, ``max(max_jump - |i - j|, 0)`` normalised per row (torchcrepe's
    choice); observations are the rows of ``prob`` normalised to sum 1. Returns (T,) int64 bins.
    """
    t, b = prob.shape
    if t == 0:
        return np.zeros(0, dtype=np.int64)
    d = np.abs(np.arange(b)[:, None] - np.arange(b)[None, :])
    trans = np.maximum(max_jump - d, 0).astype(np.float64)
    trans /= trans.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        log_t = np.log(trans)
        obs = prob.astype(np.float64)
        obs = np.log(obs / np.maximum(obs.sum(axis=1, keepdims=True), 1e-300) + 1e-300)
    # Only bins within max_jump can be reached: a banded max keeps this O(T * B * 2J).
    offs = np.arange(-(max_jump - 1), max_jump)
    src = np.arange(b)[:, None] + offs[None, :]                 # (B, 2J-1) previous bins
    ok = (src >= 0) & (src < b)
    srcc = np.clip(src, 0, b - 1)
    lt = np.where(ok, log_t[srcc, np.arange(b)[:, None]], -np.inf)
    back = np.empty((t, b), dtype=np.int32)
    score = obs[0] - math.log(b)
    back[0] = np.arange(b)
    for i in range(1, t):
        cand = score[srcc] + lt
        k = np.argmax(cand, axis=1)
        back[i] = srcc[np.arange(b), k]
        score = cand[np.arange(b), k] + obs[i]
    path = np.empty(t, dtype=np.int64)
    path[-1] = int(np.argmax(score))
    for i in range(t - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def slaney_mel(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """librosa's default mel filterbank (Slaney mel scale, area-normalised): float32 (n_mels, n_fft//2+1)."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        lin = f / (200.0 / 3)
        logstep = math.log(6.4) / 27.0
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, lin)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        logstep = math.log(6.4) / 27.0
        return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), (200.0 / 3) * m)

    fft_f = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    w *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w.astype(np.float32)


def grid_from_net_frames(times: np.ndarray, f0: np.ndarray, grid_times: np.ndarray) -> np.ndarray:
    """Read F0 (Hz, 0 = unvoiced) given at increasing ``times`` (s) off at ``grid_times`` (s).

    Voicing comes from the nearest network frame; a voiced grid frame between two voiced network
    frames gets their log-frequency interpolation, otherwise the nearest frame's value.
    Returns float32 like ``grid_times``.
    """
    n = times.shape[0]
    if n == 0:
        return np.zeros(grid_times.shape, dtype=np.float32)
    i1 = np.clip(np.searchsorted(times, grid_times), 1, max(1, n - 1)) if n > 1 else np.zeros(grid_times.shape, int)
    i0 = np.maximum(i1 - 1, 0)
    t0, t1 = times[i0], times[i1]
    span = np.where(t1 > t0, t1 - t0, 1.0)
    a = np.clip((grid_times - t0) / span, 0.0, 1.0)
    nearest = np.where(a < 0.5, i0, i1)
    v0, v1 = f0[i0] > 0, f0[i1] > 0
    out = f0[nearest].astype(np.float64)
    both = v0 & v1 & (out > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lf = (1 - a) * np.log2(np.where(v0, f0[i0], 1.0)) + a * np.log2(np.where(v1, f0[i1], 1.0))
    out[both] = np.exp2(lf[both])
    return out.astype(np.float32)


class OfflineNeuralTracker(F0Tracker):
    """Base of the offline neural trackers: resample to ``net_rate``, analyse, map to the grid.

    Subclasses implement :meth:`analyse` (16 kHz audio -> frame times and F0) and may read
    ``context_seconds`` of real audio past the last grid frame (the network's half window).
    """

    streaming = False
    net_rate: int = 16000
    context_seconds: float = 0.05

    def analyse(self, x: np.ndarray, f0_min: float, f0_max: float) -> tuple[np.ndarray, np.ndarray]:
        """x: float32 (M,) at ``net_rate``. Returns (times in s (T,), F0 in Hz (T,), 0 = unvoiced)."""
        raise NotImplementedError

    def track(self, audio: np.ndarray, sample_rate: int, hop: int, n_frames: int,
              f0_min: float = 50.0, f0_max: float = 1100.0) -> np.ndarray:
        from svc_dsp.audio.resample import resample

        sample_rate, hop, n_frames = check_grid(sample_rate, hop, n_frames)
        x = check_audio(audio)
        f0_min, f0_max = check_f0_range(f0_min, f0_max, sample_rate)
        if n_frames == 0:
            return np.zeros(0, dtype=np.float32)
        need = n_frames * hop + int(math.ceil(self.context_seconds * sample_rate))
        padded = np.zeros(need, dtype=np.float32)
        padded[:min(need, x.shape[0])] = x[:need]
        x16 = resample(padded, sample_rate, self.net_rate) if sample_rate != self.net_rate else padded
        times, f0 = self.analyse(np.ascontiguousarray(x16, dtype=np.float32), f0_min, f0_max)
        f0 = np.where((f0 >= f0_min) & (f0 <= f0_max), f0, 0.0)
        grid = (np.arange(n_frames) + 1) * hop / sample_rate
        return grid_from_net_frames(np.asarray(times, np.float64), np.asarray(f0, np.float64), grid)
