"""Second, independent implementations of the neural F0 networks in plain numpy (no torch), written
from the networks' definitions: they check the torch modules the trackers run."""
from __future__ import annotations

import numpy as np


def reference_clip(sr: int = 16000, seconds: float = 0.5) -> np.ndarray:
    """A deterministic sung-like test clip: a 196 Hz tone with harmonics, a glide and a little noise."""
    t = np.arange(int(sr * seconds)) / sr
    f = 196.0 * 2 ** (t * 0.5)
    ph = 2 * np.pi * np.cumsum(f) / sr
    x = sum(0.3 / h * np.sin(h * ph) for h in range(1, 6))
    return (x + 0.002 * np.random.default_rng(7).standard_normal(t.shape)).astype(np.float32)


def conv1d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, stride: int = 1, pad: tuple[int, int] = (0, 0),
           groups: int = 1) -> np.ndarray:
    """x (C_in, T), w (C_out, C_in/groups, K) -> (C_out, T_out); cross-correlation like every framework."""
    x = np.pad(x, ((0, 0), pad))
    c_out, c_in_g, k = w.shape
    t_out = (x.shape[1] - k) // stride + 1
    idx = np.arange(t_out)[:, None] * stride + np.arange(k)[None, :]
    out = np.empty((c_out, t_out), np.float64)
    per = c_out // groups
    for g in range(groups):
        cols = x[g * c_in_g:(g + 1) * c_in_g][:, idx]                  # (C_in_g, T_out, K)
        wg = w[g * per:(g + 1) * per]                                  # (per, C_in_g, K)
        out[g * per:(g + 1) * per] = np.einsum("itk,oik->ot", cols, wg)
    if b is not None:
        out += b[:, None]
    return out


def crepe_numpy(w: dict[str, np.ndarray], frame: np.ndarray) -> np.ndarray:
    """One normalised 1024-sample frame -> 360 activations (Keras layers, BatchNorm not folded)."""
    x = frame.astype(np.float64)[None, :]
    for i in range(1, 7):
        k = w[f"conv{i}.weight"].shape[2]
        stride = 4 if i == 1 else 1
        t_in = x.shape[1]
        t_out = -(-t_in // stride)
        total = max((t_out - 1) * stride + k - t_in, 0)            # Keras/TF "same" padding
        x = conv1d(x, w[f"conv{i}.weight"].astype(np.float64), w[f"conv{i}.bias"], stride, (total // 2, total - total // 2))
        x = np.maximum(x, 0.0)
        x = (x - w[f"bn{i}.mean"][:, None]) / np.sqrt(w[f"bn{i}.var"][:, None] + 1e-3) * w[f"bn{i}.gamma"][:, None] \
            + w[f"bn{i}.beta"][:, None]
        x = x[:, :x.shape[1] // 2 * 2].reshape(x.shape[0], -1, 2).max(axis=2)
    flat = x.T.reshape(-1)                                          # Keras flattens time-major
    return 1.0 / (1.0 + np.exp(-(w["classifier.weight"] @ flat + w["classifier.bias"])))


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, axis: int = -1, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(axis=axis, keepdims=True)
    var = x.var(axis=axis, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def fcpe_numpy(w: dict[str, np.ndarray], mel: np.ndarray) -> np.ndarray:
    """log-mel (T, 128) -> activations (T, 360) of torchfcpe's conv-only CFNaiveMelPE."""
    f = {k: v.astype(np.float64) for k, v in w.items()}
    x = conv1d(mel.T.astype(np.float64), f["input_stack.0.weight"], f["input_stack.0.bias"], pad=(1, 1))
    c, t = x.shape
    grp = x.reshape(4, c // 4, t)
    grp = (grp - grp.mean(axis=(1, 2), keepdims=True)) / np.sqrt(grp.var(axis=(1, 2), keepdims=True) + 1e-5)
    x = grp.reshape(c, t) * f["input_stack.1.weight"][:, None] + f["input_stack.1.bias"][:, None]
    x = np.where(x > 0, x, 0.01 * x)
    x = conv1d(x, f["input_stack.3.weight"], f["input_stack.3.bias"], pad=(1, 1)).T       # (T, 512)
    for i in range(6):
        p = f"net.encoder_layers.{i}.conformer.net"
        h = _layer_norm(x, f[f"{p}.0.weight"], f[f"{p}.0.bias"]).T
        h = conv1d(h, f[f"{p}.2.weight"], f[f"{p}.2.bias"])
        h = h[:1024] / (1.0 + np.exp(-h[1024:]))                      # GLU
        h = conv1d(h, f[f"{p}.4.conv.weight"], f[f"{p}.4.conv.bias"], pad=(15, 15), groups=1024)
        h = h / (1.0 + np.exp(-h))                                    # SiLU
        x = x + conv1d(h, f[f"{p}.6.weight"], f[f"{p}.6.bias"]).T
    x = _layer_norm(x, f["norm.weight"], f["norm.bias"])
    v = f["output_proj.weight_v"]
    wt = f["output_proj.weight_g"] * v / np.linalg.norm(v, axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-(x @ wt.T + f["output_proj.bias"])))


def pesto_numpy(w: dict[str, np.ndarray], db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CQT in dB (N, 251) -> (activations after the pitch shift (N, 384), confidence (N,))."""
    f = {k: np.asarray(v, np.float64) for k, v in w.items()}
    x = db.astype(np.float64) * np.log(10) / 10
    energy = np.exp(x)
    flat = np.exp(np.log(energy).mean(-1)) / np.maximum(energy.mean(-1), 1e-8)
    outs, confs = [], []
    lrelu = lambda a: np.where(a > 0, a, 0.3 * a)  # noqa: E731
    for n in range(x.shape[0]):
        c = np.maximum(conv1d(energy[n][None], f["confidence.conv.weight"], f["confidence.conv.bias"], stride=3), 0)[0]
        z = np.concatenate([c, [flat[n]]]) @ f["confidence.linear.weight"][0] + f["confidence.linear.bias"][0]
        confs.append(1 / (1 + np.exp(-z)))
        h = x[n, 16:-16][None]
        h = (h - h.mean()) / np.sqrt(h.var() + 1e-5) * f["encoder.layernorm.weight"] + f["encoder.layernorm.bias"]
        h = lrelu(conv1d(h, f["encoder.conv1.0.weight"], f["encoder.conv1.0.bias"], pad=(19, 19)))
        for i in range(2):
            h = lrelu(conv1d(h, f[f"encoder.prefilt_layers.{i}.0.weight"], f[f"encoder.prefilt_layers.{i}.0.bias"],
                             pad=(19, 19))) + h
        for i in (0, 3, 6, 9):
            h = lrelu(conv1d(h, f[f"encoder.conv_layers.{i}.weight"], f[f"encoder.conv_layers.{i}.bias"]))
        flatv = h.reshape(1, -1)
        k = f["encoder.fc.weight"].shape[-1]
        y = conv1d(flatv, f["encoder.fc.weight"][0:1], None, pad=(k - flatv.shape[1], k - flatv.shape[1]))[0]
        y = np.exp(y - y.max())
        y /= y.sum()
        outs.append(np.roll(y, -int(round(float(np.ravel(f["shift"])[0]) * 3))))
    return np.array(outs), np.array(confs)
