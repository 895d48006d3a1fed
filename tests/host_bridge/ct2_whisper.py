"""A small random Whisper model written in CTranslate2's model.bin layout, and a numpy-only
reference forward of Whisper's encoder (an independent path to check the torch encoder against)."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from scipy.special import erf


def _string(s: str) -> bytes:
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def ct2_bytes(variables: dict[str, np.ndarray], spec: str = "WhisperSpec",
              aliases: dict[str, str] | None = None) -> bytes:
    """Serialise ``variables`` as a CTranslate2 binary version 6 model.bin."""
    ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.int32): 3,
           np.dtype(np.float16): 4}
    out = [struct.pack("<I", 6), _string(spec), struct.pack("<I", 3), struct.pack("<I", len(variables))]
    for name, a in variables.items():
        a = np.ascontiguousarray(a)
        out += [_string(name), struct.pack("<B", a.ndim), struct.pack(f"<{a.ndim}I", *a.shape),
                struct.pack("<BI", ids[a.dtype], a.nbytes), a.tobytes()]
    aliases = aliases or {}
    out.append(struct.pack("<I", len(aliases)))
    for k, v in aliases.items():
        out += [_string(k), _string(v)]
    return b"".join(out)


def random_whisper(d: int = 16, heads: int = 2, layers: int = 2, n_ctx: int = 1500, seed: int = 0,
                   english: bool = True) -> dict[str, np.ndarray]:
    """CTranslate2 variable names of a random Whisper (encoder + a token of decoder), float16."""
    rng = np.random.default_rng(seed)

    def r(*shape: int, s: float = 0.2) -> np.ndarray:
        return (s * rng.standard_normal(shape)).astype(np.float16)

    v: dict[str, np.ndarray] = {"encoder/num_heads": np.array(heads, np.int16),
                                "encoder/conv1/weight": r(d, 80, 3), "encoder/conv1/bias": r(d),
                                "encoder/conv2/weight": r(d, d, 3, s=0.1), "encoder/conv2/bias": r(d),
                                "encoder/position_encodings/encodings": r(n_ctx, d, s=0.5)}
    for i in range(layers):
        p = f"encoder/layer_{i}"
        v.update({f"{p}/self_attention/layer_norm/gamma": (1 + r(d)).astype(np.float16),
                  f"{p}/self_attention/layer_norm/beta": r(d),
                  f"{p}/self_attention/linear_0/weight": r(3 * d, d), f"{p}/self_attention/linear_0/bias": r(3 * d),
                  f"{p}/self_attention/linear_1/weight": r(d, d), f"{p}/self_attention/linear_1/bias": r(d),
                  f"{p}/ffn/layer_norm/gamma": (1 + r(d)).astype(np.float16), f"{p}/ffn/layer_norm/beta": r(d),
                  f"{p}/ffn/linear_0/weight": r(4 * d, d), f"{p}/ffn/linear_0/bias": r(4 * d),
                  f"{p}/ffn/linear_1/weight": r(d, 4 * d, s=0.1), f"{p}/ffn/linear_1/bias": r(d)})
    v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"] = (1 + r(d)).astype(np.float16), r(d)
    v["decoder/embeddings/weight"] = r(51864 if english else 51865, 2)
    return v


def write_model_bin(path: Path, variables: dict[str, np.ndarray], parts: int = 1, **kw) -> list[Path]:
    """Write model.bin (parts == 1) or model.bin.part1..partN; returns the files in order."""
    data = ct2_bytes(variables, **kw)
    if parts == 1:
        path.write_bytes(data)
        return [path]
    cuts = np.linspace(0, len(data), parts + 1).astype(int)
    out = []
    for i in range(parts):
        p = path.with_name(f"{path.name}.part{i + 1}")
        p.write_bytes(data[cuts[i]:cuts[i + 1]])
        out.append(p)
    return out


# ---- numpy-only Whisper encoder (float64), from CTranslate2 names ----

def np_log_mel(x: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """OpenAI's log_mel_spectrogram in numpy: (N,) -> (80, N // 160), normalised."""
    n_fft, hop = 400, 160
    xp = np.pad(x.astype(np.float64), n_fft // 2, mode="reflect")
    n = 1 + (xp.size - n_fft) // hop
    idx = np.arange(n)[:, None] * hop + np.arange(n_fft)[None, :]
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    power = np.abs(np.fft.rfft(xp[idx] * win, axis=1)) ** 2
    mel = filters.astype(np.float64) @ power[:-1].T
    log = np.log10(np.maximum(mel, 1e-10))
    return (np.maximum(log, log.max() - 8.0) + 4.0) / 4.0


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int) -> np.ndarray:
    xp = np.pad(x, ((0, 0), (1, 1)))
    n = (xp.shape[1] - 3) // stride + 1
    cols = np.stack([xp[:, k: k + stride * (n - 1) + 1: stride] for k in range(3)], axis=-1)  # (Cin, n, 3)
    return np.einsum("oik,ink->on", w, cols) + b[:, None]


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + erf(x / np.sqrt(2)))


def _ln(x: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * g + b


def np_encoder(v: dict[str, np.ndarray], mel: np.ndarray, n_layers: int, final_norm: bool) -> np.ndarray:
    """CTranslate2-named tensors + normalised mel (80, L) -> (ceil(L/2), d), float64."""
    f = {k: np.asarray(a, dtype=np.float64) for k, a in v.items() if k.startswith("encoder/")}
    heads = int(np.asarray(v["encoder/num_heads"]))
    x = _gelu(_conv(mel, f["encoder/conv1/weight"], f["encoder/conv1/bias"], 1))
    x = _gelu(_conv(x, f["encoder/conv2/weight"], f["encoder/conv2/bias"], 2)).T
    t, d = x.shape
    x = x + f["encoder/position_encodings/encodings"][:t]
    hd = d // heads
    for i in range(n_layers):
        p = f"encoder/layer_{i}"
        h = _ln(x, f[f"{p}/self_attention/layer_norm/gamma"], f[f"{p}/self_attention/layer_norm/beta"])
        qkv = h @ f[f"{p}/self_attention/linear_0/weight"].T + f[f"{p}/self_attention/linear_0/bias"]
        q, k, val = (qkv[:, j * d:(j + 1) * d].reshape(t, heads, hd).transpose(1, 0, 2) for j in range(3))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
        s = np.exp(s - s.max(-1, keepdims=True))
        a = (s / s.sum(-1, keepdims=True)) @ val
        x = x + a.transpose(1, 0, 2).reshape(t, d) @ f[f"{p}/self_attention/linear_1/weight"].T \
            + f[f"{p}/self_attention/linear_1/bias"]
        h = _ln(x, f[f"{p}/ffn/layer_norm/gamma"], f[f"{p}/ffn/layer_norm/beta"])
        h = _gelu(h @ f[f"{p}/ffn/linear_0/weight"].T + f[f"{p}/ffn/linear_0/bias"])
        x = x + h @ f[f"{p}/ffn/linear_1/weight"].T + f[f"{p}/ffn/linear_1/bias"]
    if final_norm:
        x = _ln(x, f["encoder/layer_norm/gamma"], f["encoder/layer_norm/beta"])
    return x


def to_ct2_names(t: dict[str, np.ndarray], heads: int) -> dict[str, np.ndarray]:
    """An encoder folder's OpenAI-named tensors -> CTranslate2 names (key bias zero), for np_encoder."""
    v: dict[str, np.ndarray] = {"encoder/num_heads": np.array(heads),
                                "encoder/conv1/weight": t["conv1.weight"], "encoder/conv1/bias": t["conv1.bias"],
                                "encoder/conv2/weight": t["conv2.weight"], "encoder/conv2/bias": t["conv2.bias"],
                                "encoder/position_encodings/encodings": t["positional_embedding"]}
    i = 0
    while f"blocks.{i}.attn.query.weight" in t:
        b, p = f"blocks.{i}.", f"encoder/layer_{i}"
        zero = np.zeros_like(t[b + "attn.query.bias"])
        v.update({f"{p}/self_attention/linear_0/weight": np.concatenate(
                      [t[b + "attn.query.weight"], t[b + "attn.key.weight"], t[b + "attn.value.weight"]]),
                  f"{p}/self_attention/linear_0/bias": np.concatenate(
                      [t[b + "attn.query.bias"], zero, t[b + "attn.value.bias"]]),
                  f"{p}/self_attention/linear_1/weight": t[b + "attn.out.weight"],
                  f"{p}/self_attention/linear_1/bias": t[b + "attn.out.bias"],
                  f"{p}/self_attention/layer_norm/gamma": t[b + "attn_ln.weight"],
                  f"{p}/self_attention/layer_norm/beta": t[b + "attn_ln.bias"],
                  f"{p}/ffn/layer_norm/gamma": t[b + "mlp_ln.weight"], f"{p}/ffn/layer_norm/beta": t[b + "mlp_ln.bias"],
                  f"{p}/ffn/linear_0/weight": t[b + "mlp.0.weight"], f"{p}/ffn/linear_0/bias": t[b + "mlp.0.bias"],
                  f"{p}/ffn/linear_1/weight": t[b + "mlp.2.weight"], f"{p}/ffn/linear_1/bias": t[b + "mlp.2.bias"]})
        i += 1
    if "ln_post.weight" in t:
        v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"] = t["ln_post.weight"], t["ln_post.bias"]
    return v


def speechlike(seconds: float, seed: int = 0, sr: int = 16000) -> np.ndarray:
    """Vowel-like formant sounds on a gliding pulse train, with noise bursts and pauses: float32 (N,)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    f0 = 110 * 2 ** (np.cumsum(rng.normal(0, 0.002, n)) + 0.3 * np.sin(2 * np.pi * 0.3 * np.arange(n) / sr))
    src = np.diff(np.floor(np.cumsum(f0) / sr), prepend=0.0)
    out = np.zeros(n)
    vowels = [(700, 1200, 2600), (300, 2300, 3000), (350, 800, 2400), (500, 1500, 2500), (600, 1000, 2700)]
    seg = int(0.15 * sr)
    for s in range(0, n, seg):
        e = min(n, s + seg)
        kind = rng.integers(0, 8)
        if kind == 0:
            continue  # pause
        x = rng.standard_normal(e - s) * 0.3 if kind == 1 else src[s:e]
        for fc in vowels[int(rng.integers(0, len(vowels)))] if kind != 1 else (4500,):
            r = np.exp(-np.pi * 120 / sr)
            x = lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * fc / sr), r * r], x)
        out[s:e] = x / (np.abs(x).max() + 1e-9) * np.hanning(e - s)
    return (0.3 * out).astype(np.float32)
