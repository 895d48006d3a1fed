"""Levels: RMS/peak in dBFS, ITU-R BS.1770-4 loudness, true peak, loudness normalisation.

Conventions: audio is float of shape ``(C, N)`` (channels first) or mono ``(N,)``, full scale
1.0 = 0 dBFS. Long signals are processed in chunks so memory stays bounded.
"""
from __future__ import annotations

import math

import numpy as np
import soxr
from scipy.signal import sosfilt

from svc_dsp.errors import AudioError, ParameterError

__all__ = [
    "rms_db", "peak_db", "db_to_gain", "gain_to_db", "k_weighting_sos", "integrated_lufs",
    "true_peak_db", "normalize_loudness",
]

_CHUNK = 1 << 18  # samples per channel processed at once by the chunked routines
_OVERSAMPLE = 4


def _as_2d(audio: np.ndarray) -> np.ndarray:
    x = np.asarray(audio)
    if x.ndim == 1:
        x = x[np.newaxis, :]
    if x.ndim != 2:
        raise AudioError(f"audio of shape {x.shape}; allowed: (C, N) or (N,)")
    return x


def db_to_gain(db: float) -> float:
    """Decibels to a linear amplitude factor (``-6.02 -> 0.5``)."""
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float, floor_db: float = -120.0) -> float:
    """Linear amplitude factor to decibels, never below ``floor_db``."""
    g = abs(float(gain))
    return max(floor_db, 20.0 * math.log10(g)) if g > 0 else floor_db


def rms_db(x: np.ndarray, floor_db: float = -120.0) -> float:
    """RMS of all samples of ``x`` (any shape) in dBFS; ``floor_db`` for silence or empty input."""
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return floor_db
    return gain_to_db(math.sqrt(float(np.mean(np.square(a)))), floor_db)


def peak_db(x: np.ndarray, floor_db: float = -120.0) -> float:
    """Sample peak of ``x`` (any shape) in dBFS; ``floor_db`` for silence or empty input."""
    a = np.asarray(x)
    if a.size == 0:
        return floor_db
    return gain_to_db(float(np.max(np.abs(a))), floor_db)


# ----------------------------------------------------------------------------- BS.1770 loudness

def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """The BS.1770 K-weighting filter (high shelf then RLB high-pass) as ``(2, 6)`` SOS.

    Both biquads come from their analogue prototypes through the bilinear transform, so they
    match the standard's 48 kHz coefficients and work at any sample rate.
    """
    fs = float(sample_rate)
    # stage 1: high shelf, +4 dB above ~1.5 kHz
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / fs)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh ** 0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0,
             (vh - vb * k / q + k * k) / a0, 1.0, 2.0 * (k * k - 1.0) / a0,
             (1.0 - k / q + k * k) / a0]
    # stage 2: RLB high-pass at ~38 Hz
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / fs)
    a0 = 1.0 + k / q + k * k
    hp = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, hp], dtype=np.float64)


def _channel_weights(channels: int) -> np.ndarray:
    """BS.1770 weights: 1.0, surrounds 1.41, LFE 0. 5 ch = L R C Ls Rs; 6 ch = 5.1 (L R C LFE
    Ls Rs); any other count weights every channel 1.0."""
    if channels == 5:
        return np.array([1.0, 1.0, 1.0, 1.41, 1.41])
    if channels == 6:
        return np.array([1.0, 1.0, 1.0, 0.0, 1.41, 1.41])
    return np.ones(channels)


def integrated_lufs(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS per ITU-R BS.1770-4.

    K-weighting, 400 ms blocks with 75 % overlap (100 ms steps), absolute gate -70 LUFS,
    relative gate -10 LU. ``audio``: ``(C, N)`` or ``(N,)``. A signal shorter than one block is
    measured as a single block; silence (nothing above the absolute gate) gives ``-inf``.
    A full-scale 997 Hz sine on one channel measures -3.01 LUFS.
    """
    x = _as_2d(audio)
    c, n = x.shape
    if n == 0:
        return float("-inf")
    step = max(1, int(round(0.1 * sample_rate)))
    sos = k_weighting_sos(sample_rate)
    zi = np.zeros((sos.shape[0], c, 2))
    weights = _channel_weights(c)
    chunk = max(step, (_CHUNK // step) * step)
    seg_energy: list[np.ndarray] = []   # per 100 ms segment: weighted sum over channels
    total_energy = 0.0
    for i in range(0, n, chunk):
        block = np.asarray(x[:, i:i + chunk], dtype=np.float64)
        y, zi = sosfilt(sos, block, axis=-1, zi=zi)
        sq = np.square(y)
        total_energy += float(weights @ sq.sum(axis=1))
        full = (sq.shape[1] // step) * step  # blocks never straddle chunk boundaries: chunk % step == 0
        if full:
            seg_energy.append(weights @ sq[:, :full].reshape(c, -1, step).sum(axis=2))
    segs = np.concatenate(seg_energy) if seg_energy else np.zeros(0)
    if segs.size >= 4:
        blocks = (segs[:-3] + segs[1:-2] + segs[2:-1] + segs[3:]) / (4 * step)
    else:
        blocks = np.array([total_energy / n])
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10.0 * np.log10(blocks)
    gated = blocks[loud > -70.0]
    if gated.size == 0:
        return float("-inf")
    rel = -0.691 + 10.0 * math.log10(float(gated.mean())) - 10.0
    gated = blocks[(loud > -70.0) & (loud > rel)]
    return float(-0.691 + 10.0 * math.log10(float(gated.mean())))


# ------------------------------------------------------------------------------------ true peak

def _true_peak_envelope(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-sample true-peak envelope ``(N,)``: max |.| over channels of the 4x oversampled
    signal within half a sample of each sample (and of the sample itself)."""
    c, n = x.shape
    env = np.max(np.abs(x), axis=0).astype(np.float64)
    if n == 0:
        return env
    stream = soxr.ResampleStream(sample_rate, _OVERSAMPLE * sample_rate, c, dtype="float32",
                                 quality="VHQ")
    # oversampled index j lies at sample time j/4; group j = 4k-2 .. 4k+1 onto sample k.
    carry = np.zeros(2)  # two virtual leading points (j = -2, -1)
    k0 = 0
    for i in range(0, n + 1, _CHUNK):
        last = i + _CHUNK > n
        chunk = np.ascontiguousarray(np.asarray(x[:, i:i + _CHUNK], dtype=np.float32).T)
        y = stream.resample_chunk(chunk, last=last)
        if y.shape[0]:
            carry = np.concatenate([carry, np.max(np.abs(y), axis=1)])
        groups = min(carry.size // _OVERSAMPLE, n - k0)
        if last:
            groups = min(-(-carry.size // _OVERSAMPLE), n - k0)
            pad = groups * _OVERSAMPLE - carry.size
            if pad > 0:
                carry = np.concatenate([carry, np.zeros(pad)])
        if groups:
            g = carry[:groups * _OVERSAMPLE].reshape(groups, _OVERSAMPLE).max(axis=1)
            np.maximum(env[k0:k0 + groups], g, out=env[k0:k0 + groups])
            carry = carry[groups * _OVERSAMPLE:]
            k0 += groups
        if last:
            break
    return env


def true_peak_db(audio: np.ndarray, sample_rate: int, floor_db: float = -120.0) -> float:
    """True peak in dBTP: the peak of the 4x oversampled signal (soxr VHQ), at least the sample
    peak. ``audio``: ``(C, N)`` or ``(N,)``."""
    x = _as_2d(audio)
    if x.size == 0:
        return floor_db
    return gain_to_db(float(_true_peak_envelope(x, sample_rate).max()), floor_db)


# --------------------------------------------------------------------------------- normalising

def _limiter_gain(env: np.ndarray, ceiling: float, lookahead: int, release: int) -> np.ndarray:
    """Gain curve ``(N,)`` in (0, 1] with ``gain[n] * env[n] <= ceiling`` everywhere.

    Required gain -> forward minimum over the look-ahead window -> exponential release of the
    gain reduction (time constant ``release`` samples) -> moving average over the look-ahead
    window (the attack ramp). Each stage keeps the curve at or below the required gain, so the
    result never lets a peak through.
    """
    n = env.size
    with np.errstate(divide="ignore"):
        req = np.minimum(1.0, ceiling / np.maximum(env, 1e-30))
    if req.min() >= 1.0:
        return np.ones(n)
    # dilate by one sample either side: inter-sample peaks sit between two samples
    req = np.minimum(req, np.minimum(np.r_[req[1:], 1.0], np.r_[1.0, req[:-1]]))
    la = max(1, lookahead)
    # forward min over [k, k+la-1]
    padded = np.r_[req, np.ones(la - 1)]
    h = np.lib.stride_tricks.sliding_window_view(padded, la).min(axis=1)
    # release: reduction r[k] = max_{j<=k} (1-h[j]) * a**(k-j), computed blockwise
    red = 1.0 - h
    a = math.exp(-1.0 / max(1.0, release))
    blk = int(min(4096, max(1.0, 2.0 * release)))  # keeps a**-blk small
    out = np.empty(n)
    state = 0.0
    for s in range(0, n, blk):
        r = red[s:s + blk]
        idx = np.arange(r.size)
        powk = a ** idx
        scaled = np.maximum.accumulate(r / powk) * powk
        cur = np.maximum(scaled, state * a * powk)
        out[s:s + blk] = cur
        state = cur[-1]
    g = 1.0 - out
    # attack ramp: trailing mean over la samples (window [k-la+1, k])
    cs = np.concatenate([np.full(la, g[0]), g])  # g[0] <= req[0..la-1]: safe padding
    c = np.cumsum(cs)
    smooth = (c[la:] - c[:-la]) / la
    return np.minimum(smooth, 1.0)


def normalize_loudness(audio: np.ndarray, sample_rate: int, *, target_lufs: float = -18.0,
                       ceiling_db: float = -1.0) -> tuple[np.ndarray, dict]:
    """Gain ``audio`` to ``target_lufs``, then limit so the true peak stays <= ``ceiling_db``.

    The limiter is linked across channels, looks ahead ~5 ms (the attack ramp spans the
    look-ahead), releases smoothly (~50 ms time constant) and never raises the gain above 1.
    Returns ``(out, report)`` with ``out`` float32 in the input's shape and ``report`` =
    ``{"measured_lufs", "gain_db", "limited_db_max", "output_lufs", "true_peak_db"}``;
    ``limited_db_max`` is the deepest gain reduction in dB (>= 0). Silence is returned unchanged.
    """
    if not ceiling_db <= 0.0:
        raise ParameterError(f"ceiling_db={ceiling_db}; allowed: <= 0 dBFS (above would clip) "
                             "— use e.g. -1.0")
    src = np.asarray(audio)
    x = _as_2d(src).astype(np.float32)
    measured = integrated_lufs(x, sample_rate)
    report: dict = {"measured_lufs": measured, "gain_db": 0.0, "limited_db_max": 0.0}
    if not math.isfinite(measured):
        report.update(output_lufs=measured, true_peak_db=true_peak_db(x, sample_rate))
        return x.reshape(src.shape), report
    gain_db = float(target_lufs - measured)
    y = (x.astype(np.float64) * db_to_gain(gain_db))
    ceiling = db_to_gain(ceiling_db)
    lookahead = max(1, int(round(0.005 * sample_rate)))
    release = 0.05 * sample_rate
    total_gain = np.ones(y.shape[1])
    margin = 1.0
    for _ in range(4):
        env = _true_peak_envelope(y.astype(np.float32), sample_rate)
        if env.max() <= ceiling:
            break
        g = _limiter_gain(env, ceiling * margin, lookahead, release)
        y *= g
        total_gain *= g
        margin *= 0.999
    out = y.astype(np.float32)
    tp = _true_peak_envelope(out, sample_rate).max()
    if tp > ceiling:  # last resort, never expected: a static trim
        out *= np.float32(ceiling / tp * 0.9999)
        total_gain *= ceiling / tp * 0.9999
    report.update(
        gain_db=gain_db,
        limited_db_max=float(-20.0 * math.log10(max(float(total_gain.min()), 1e-12))),
        output_lufs=integrated_lufs(out, sample_rate),
        true_peak_db=true_peak_db(out, sample_rate),
    )
    return out.reshape(src.shape), report
