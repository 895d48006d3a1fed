"""Loudness matching and the silence gate, on the frame grid, stateful.

Both work on per-hop mean-square levels (frame j = samples [j*hop, (j+1)*hop)) and
return one gain per frame; :func:`apply_frame_gains` interpolates the gains linearly
across each hop (from frame j-1's gain to frame j's), so there are no per-block gain
steps. Processing frames in any split equals processing them at once.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

LEVEL_FLOOR = 1e-12  # -120 dB
_RAMPS: dict[int, np.ndarray] = {}  # per hop size: (1..hop)/hop, read-only


def hop_mean_square(x: np.ndarray, hop: int) -> np.ndarray:
    """x: (k*hop,) -> (k,) mean square per hop."""
    sq = x.reshape(-1, hop).astype(np.float64)
    sq *= sq
    return np.add.reduce(sq, axis=1) / hop  # what np.mean computes, without its wrapper


class _OnePole:
    """y[j] = a*y[j-1] + (1-a)*x[j] with carried state."""

    def __init__(self, coef: float) -> None:
        self.a = coef
        self.zi = np.zeros(1)

    def reset(self, value: float = 0.0) -> None:
        self.zi = np.array([self.a * value])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] <= 4:  # a few frames per live block: scalar steps, same numbers as lfilter
            a, b, z = self.a, 1.0 - self.a, float(self.zi[0])
            y = np.empty(x.shape[0])
            for j, v in enumerate(x.tolist()):
                y[j] = yj = b * v + z
                z = a * yj
            self.zi[0] = 0.0 if abs(z) < 1e-30 else z
            return y
        y, self.zi = lfilter([1.0 - self.a], [1.0, -self.a], x, zi=self.zi)
        if abs(self.zi[0]) < 1e-30:
            self.zi[0] = 0.0  # flush denormals after long silence
        return y


def _coef(seconds: float, hop_seconds: float) -> float:
    return math.exp(-hop_seconds / max(seconds, 1e-6))


class DcBlocker:
    """First-order high-pass (about 20 Hz) with carried state: removes DC offset before
    analysis, so an offset never reads as loudness or pitch."""

    def __init__(self, sample_rate: int, cutoff_hz: float = 20.0) -> None:
        self.r = math.exp(-2.0 * math.pi * cutoff_hz / sample_rate)
        self.zi = np.zeros(1)

    def reset(self) -> None:
        self.zi = np.zeros(1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, self.zi = lfilter([1.0, -1.0], [1.0, -self.r], x.astype(np.float64), zi=self.zi)
        if abs(self.zi[0]) < 1e-30:
            self.zi[0] = 0.0  # flush denormals after long silence
        return y.astype(np.float32)


class LoudnessMatcher:
    """Gain that moves the output's short-term level towards the input's.

    gain_db = amount * (level_in - level_out), levels from ~10 ms exponential windows,
    limited to +-max_db, then smoothed: fast when the gain rises (onsets are not delayed),
    slower when it falls (no pumping). amount 0 = the model's own envelope, 1 = the input's.
    """

    def __init__(self, hop_seconds: float, window_s: float = 0.010, rise_s: float = 0.003,
                 fall_s: float = 0.020, max_db: float = 30.0) -> None:
        self.lev_in = _OnePole(_coef(window_s, hop_seconds))
        self.lev_out = _OnePole(_coef(window_s, hop_seconds))
        self.a_rise, self.a_fall = _coef(rise_s, hop_seconds), _coef(fall_s, hop_seconds)
        self.max_db = max_db
        self.g = 0.0

    def reset(self) -> None:
        for f in (self.lev_in, self.lev_out):
            f.reset()
        self.g = 0.0

    def gains_db(self, ms_in: np.ndarray, ms_out: np.ndarray, amount: np.ndarray | float) -> np.ndarray:
        """ms_in, ms_out: (k,) mean squares per hop -> (k,) gain in dB (smoothed)."""
        li = 10.0 * np.log10(self.lev_in(ms_in) + LEVEL_FLOOR)
        lo = 10.0 * np.log10(self.lev_out(ms_out) + LEVEL_FLOOR)
        diff = np.minimum(np.maximum(li - lo, -self.max_db), self.max_db)
        diff = np.where((li < -90.0) & (lo < -90.0), 0.0, diff)  # both silent: nothing to match
        target = np.asarray(amount, dtype=np.float64) * diff  # amount: scalar or (k,)
        out = np.empty(target.shape[0])
        g = self.g
        for j in range(target.shape[0]):  # a few hundred frames per second
            a = self.a_rise if target[j] > g else self.a_fall
            g = a * g + (1.0 - a) * target[j]
            if abs(g) < 1e-9:
                g = 0.0  # no denormals in long silences
            out[j] = g
        self.g = g
        return out


class Gate:
    """Silence gate with hold: closes only after the input stayed under the threshold for
    ``hold_s`` (breaths and consonant tails survive), opens fast, releases smoothly.
    """

    def __init__(self, hop_seconds: float, hold_s: float = 0.120, attack_s: float = 0.002,
                 release_s: float = 0.040, level_s: float = 0.005) -> None:
        self.hold = max(1, int(round(hold_s / hop_seconds)))
        self.level = _OnePole(_coef(level_s, hop_seconds))
        self.a_att = _coef(attack_s, hop_seconds)
        self.a_rel = _coef(release_s, hop_seconds)
        self.reset()

    def reset(self) -> None:
        self.level.reset()
        self.since_open = 10 ** 9  # frames since the level was last above the threshold
        self.g = 0.0

    def gains(self, ms_in: np.ndarray, threshold_db: float) -> np.ndarray:
        """ms_in: (k,) mean square per hop -> (k,) linear gate gain in 0..1."""
        lev = 10.0 * np.log10(self.level(ms_in) + LEVEL_FLOOR)
        above = lev > threshold_db
        out = np.empty(lev.shape[0])
        s, g = self.since_open, self.g
        for j in range(lev.shape[0]):  # a few hundred frames per second of audio
            s = 0 if above[j] else s + 1
            target = 1.0 if s < self.hold else 0.0
            a = self.a_att if target > g else self.a_rel
            g = a * g + (1.0 - a) * target
            out[j] = g
        self.since_open, self.g = s, g
        return out


def apply_frame_gains(x: np.ndarray, gains: np.ndarray, prev: float, hop: int) -> tuple[np.ndarray, float]:
    """Multiply hop j of x by a ramp from gains[j-1] (``prev`` for j=0) to gains[j].

    x: (k*hop,), gains: (k,) linear -> (y, last gain).
    """
    k = gains.shape[0]
    if k == 0:
        return x, prev
    ext = np.concatenate([[prev], gains])
    ramp = _RAMPS.get(hop)
    if ramp is None:
        ramp = _RAMPS[hop] = np.arange(1, hop + 1, dtype=np.float64) / hop
    g = ext[:-1, None] + (ext[1:, None] - ext[:-1, None]) * ramp[None, :]
    return (x.reshape(k, hop) * g).reshape(-1).astype(np.float32), float(gains[-1])
