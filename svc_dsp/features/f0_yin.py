""""yin": a fast streaming F0 tracker (YIN with an octave-jump guard and voicing hysteresis).

How a frame is computed (frame j, end of its lookahead e = (j + 1) * hop + lookahead_samples):

1. The input is low-passed (causal Butterworth, order 8, cut at 0.42 x the analysis rate) and decimated by
   ``D = max(1, sample_rate // analysis_rate)`` (24 kHz -> 12 kHz): YIN needs no more.
2. The analysis segment is the last ``W + tau_max + 1`` decimated samples before e. The YIN
   integration window is the newest W samples and the lagged copies reach back in time, so the
   window (W = max(tau_max, 2 * lookahead), at least 10 ms, span at most 45 ms) is centred on the
   frame for short lags. ``tau_max`` = one period of f0_min.
3. Difference function via FFT autocorrelation and running energies, cumulative-mean
   normalisation (CMNDF), first dip under ``threshold`` (else the global minimum), parabolic
   interpolation on the raw difference function.
4. A causal, stateful pass decides each frame: the octave guard (when the pick is about 2x or
   0.5x the recent voiced F0 and the dip at the other octave's lag is almost as good, keep the
   recent octave: for as long as that dip is clearly the better one, else for at most
   ``octave_hold_seconds``, since a real octave leap also looks "almost as good"), voicing with
   hysteresis (``threshold`` to start a voiced run, ``release_threshold`` to keep it; no lookahead)
   and a minimum energy.

:meth:`YinTracker.track` runs the same :class:`YinStream` over the whole signal, and every step
above works row by row (numpy's FFT, cumsum and arg-reductions do not mix rows), so streamed
frames equal offline frames bit for bit for any block split.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from svc_dsp.errors import AudioError, ParameterError
from svc_dsp.features.f0 import (F0Stream, F0Tracker, check_audio, check_f0_range, check_grid,
                                 register_f0_tracker, track_by_stream)

__all__ = ["YinStream", "YinTracker"]

_MAX_LOOKAHEAD_S = 0.020
_MAX_SPAN_S = 0.045
_MIN_WINDOW_S = 0.010
_SEARCH_REL = 0.06           # half-width of the octave-alternative search, relative to the lag
_EMPTY = np.zeros(0, dtype=np.float32)


class _YinAnalysis:
    """Stateless per-frame YIN on rows of decimated samples (newest sample last)."""

    def __init__(self, sample_rate: int, f0_min: float, f0_max: float, lookahead_s: float,
                 analysis_rate: int, threshold: float) -> None:
        self.decim = max(1, sample_rate // analysis_rate)
        sr_a = sample_rate / self.decim
        self.rate = sr_a
        # Transfer-function form: lfilter costs a fifth of sosfilt per call (it runs once per
        # pushed block), and order 8 at these cutoffs stays within 1e-9 of the SOS cascade.
        from scipy.signal import butter, lfilter   # here, not at import: scipy.signal takes ~1 s to load

        self.lfilter = lfilter
        self.ba = None if self.decim == 1 else butter(8, 0.42 * sr_a, fs=sample_rate)
        self.tau_max = int(math.ceil(sr_a / f0_min))
        self.tau_min = max(2, int(math.floor(sr_a / f0_max)))
        if f0_max > sr_a / 4:
            raise ParameterError(
                f"f0_max={f0_max:g} Hz is above what 'yin' analyses at {sr_a:g} Hz (at most {sr_a / 4:g} Hz); "
                f"lower f0_max or raise the tracker's analysis_rate.")
        span_max = int(round(_MAX_SPAN_S * sr_a))
        w_min = int(round(_MIN_WINDOW_S * sr_a))
        if span_max - self.tau_max < w_min:
            raise ParameterError(
                f"f0_min={f0_min:g} Hz is too low for 'yin': one period must leave a {_MIN_WINDOW_S * 1e3:g} ms "
                f"window inside {_MAX_SPAN_S * 1e3:g} ms, so f0_min must be at least "
                f"{1.0 / (_MAX_SPAN_S - _MIN_WINDOW_S):.1f} Hz. Raise f0_min or use 'harvest' offline.")
        self.win = min(max(self.tau_max, int(round(2 * lookahead_s * sr_a)), w_min), span_max - self.tau_max)
        self.span = self.win + self.tau_max + 1          # lags 0 .. tau_max + 1 are computed
        self.nfft = 1 << (self.span - 1).bit_length()
        self.threshold = threshold
        half = int(math.ceil(_SEARCH_REL * self.tau_max)) + 2
        self._offs = np.arange(-half, half + 1)
        self._lags = np.arange(1, self.tau_max + 2, dtype=np.float64)

    def analyse(self, seg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """seg: float64 (B, span). Returns (f0 (B, 3) Hz, aperiodicity (B, 3), energy (B,) dB).

        Column 0 is YIN's pick, 1 the best dip near twice its lag (octave below), 2 near half its
        lag (octave above); aperiodicity is the CMNDF at the dip (inf where there is none).
        """
        b = seg.shape[0]
        w, tmax, tmin, nfft = self.win, self.tau_max, self.tau_min, self.nfft
        y = seg[:, ::-1]                                   # y[:, 0] is the newest sample
        spec = np.fft.rfft(y[:, :w], nfft)
        np.conjugate(spec, out=spec)
        spec *= np.fft.rfft(y, nfft)
        r = np.fft.irfft(spec, nfft)
        cum = np.empty((b, self.span + 1))
        cum[:, 0] = 0.0
        np.cumsum(y * y, axis=1, out=cum[:, 1:])
        energy = cum[:, w]
        d = cum[:, w:w + tmax + 2] - cum[:, :tmax + 2]
        d += energy[:, None]
        d -= 2.0 * r[:, :tmax + 2]
        np.maximum(d, 0.0, out=d)
        d[:, 0] = 0.0
        dsum = np.cumsum(d[:, 1:], axis=1)
        dp = np.ones_like(d)
        np.divide(d[:, 1:] * self._lags, dsum, out=dp[:, 1:], where=dsum > 1e-20 * (energy[:, None] + 1e-30))

        if b == 1:  # one frame per live block: the same numbers with scalar picking (no fancy indexing)
            return self._pick_one(d[0], dp[0], float(energy[0]))
        rows = np.arange(b)[:, None]
        mid = dp[:, tmin:tmax + 1]
        dips = (mid < dp[:, tmin - 1:tmax]) & (mid <= dp[:, tmin + 1:tmax + 2]) & (mid < self.threshold)
        first = np.argmax(dips, axis=1)
        sel = np.where(dips[rows[:, 0], first], first, np.argmin(mid, axis=1)) + tmin
        # octave alternatives: the lowest CMNDF within +-6 % of 2 * lag and of lag / 2
        centre = np.stack([2 * sel, (sel + 1) // 2], axis=1)
        pos = centre[:, :, None] + self._offs
        half = np.maximum(2, np.ceil(_SEARCH_REL * centre)).astype(np.int64)
        ok = (np.abs(self._offs) <= half[:, :, None]) & (pos >= tmin) & (pos <= tmax)
        vals = np.where(ok, dp[rows[:, :, None], np.minimum(pos, tmax)], np.inf)
        k = np.argmin(vals, axis=2)[:, :, None]
        lag = np.empty((b, 3), dtype=np.int64)
        lag[:, 0] = sel
        lag[:, 1:] = np.maximum(np.take_along_axis(pos, k, axis=2)[:, :, 0], tmin).clip(max=tmax)
        ap = np.empty((b, 3))
        ap[:, 0] = dp[rows[:, 0], sel]
        ap[:, 1:] = np.take_along_axis(vals, k, axis=2)[:, :, 0]
        # parabolic interpolation on the raw difference function
        dm, d0, dq = d[rows, lag - 1], d[rows, lag], d[rows, lag + 1]
        den = dm - 2.0 * d0 + dq
        shift = np.zeros_like(d0)
        np.divide(0.5 * (dm - dq), den, out=shift, where=den > 0.0)
        np.maximum(np.minimum(shift, 1.0), -1.0, out=shift)
        return self.rate / (lag + shift), ap, 10.0 * np.log10(energy / w + 1e-20)


    def _pick_one(self, d: np.ndarray, dp: np.ndarray, energy: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`analyse`'s picking for one row (d, dp: (tau_max + 2,)), scalar by scalar; the
        same operations on the same float64 values, so the same results bit for bit."""
        tmin, tmax = self.tau_min, self.tau_max
        mid = dp[tmin:tmax + 1]
        dips = (mid < dp[tmin - 1:tmax]) & (mid <= dp[tmin + 1:tmax + 2]) & (mid < self.threshold)
        first = int(dips.argmax())
        sel = (first if dips[first] else int(mid.argmin())) + tmin
        lags, aps = [sel], [float(dp[sel])]
        reach = int(self._offs[-1])
        for centre in (2 * sel, (sel + 1) // 2):  # octave below, octave above
            half = min(max(2, math.ceil(_SEARCH_REL * centre)), reach)
            lo, hi = max(centre - half, tmin), min(centre + half, tmax)
            if lo > hi:  # no candidate: the batched path's argmin over all-inf picks offset -reach
                lags.append(min(max(centre - reach, tmin), tmax))
                aps.append(math.inf)
                continue
            seg = dp[lo:hi + 1]
            j = int(seg.argmin())
            lags.append(lo + j)
            aps.append(float(seg[j]))
        f0 = np.empty((1, 3))
        for i, lag in enumerate(lags):  # parabolic interpolation on the raw difference function
            dm, d0, dq = float(d[lag - 1]), float(d[lag]), float(d[lag + 1])
            den = dm - 2.0 * d0 + dq
            shift = 0.5 * (dm - dq) / den if den > 0.0 else 0.0
            shift = max(min(shift, 1.0), -1.0)
            f0[0, i] = self.rate / (lag + shift)
        return f0, np.array([aps]), 10.0 * np.log10(np.array([energy / self.win + 1e-20]))


class _Decider:
    """The causal, stateful part: octave guard, voicing hysteresis, energy gate."""

    def __init__(self, tracker: YinTracker, frame_rate: float, f0_min: float, f0_max: float) -> None:
        self.on, self.off = tracker.threshold, tracker.release_threshold
        self.min_db, self.margin = tracker.min_energy_db, tracker.octave_margin
        self.max_hold = int(round(tracker.octave_hold_seconds * frame_rate))     # 0 disables the guard
        self.memory = max(1, int(round(tracker.octave_memory_seconds * frame_rate)))
        self.f0_min, self.f0_max = f0_min, f0_max
        self.reset()

    def reset(self) -> None:
        self.prev_f0, self.since, self.voiced, self.hold = 0.0, 1 << 30, False, 0

    def run(self, f0s: np.ndarray, aps: np.ndarray, energy_db: np.ndarray) -> np.ndarray:
        """One output F0 (Hz, 0 = unvoiced) per row of :meth:`_YinAnalysis.analyse`'s results."""
        prev, since, voiced, hold = self.prev_f0, self.since, self.voiced, self.hold
        on, off, min_db, margin = self.on, self.off, self.min_db, self.margin
        max_hold, memory, lo, hi = self.max_hold, self.memory, self.f0_min, self.f0_max
        out = []
        for (f, f_lo, f_hi), (ap, ap_lo, ap_hi), e in zip(f0s.tolist(), aps.tolist(), energy_db.tolist()):
            if e < min_db:
                out.append(0.0)
                voiced, hold, since = False, 0, since + 1
                continue
            if max_hold and prev > 0.0 and since <= memory:
                # The other octave's dip is "clearly better" when the raw pick only won by YIN's
                # first-dip rule; then continuity wins for as long as that lasts. When it is merely
                # "almost as good" (a real octave leap looks like that too) we hold for max_hold frames.
                ratio = f / prev
                if 1.68 < ratio < 2.38 and ap_lo <= ap + margin:      # jumped up: keep the lower octave
                    clear = ap_lo < 0.5 * ap - 0.005
                    if clear or hold < max_hold:
                        f, ap, hold = f_lo, ap_lo, hold + (not clear)
                elif 0.42 < ratio < 0.595 and ap_hi <= ap + margin:  # jumped down: keep the upper one
                    clear = ap_hi < 0.5 * ap - 0.005
                    if clear or hold < max_hold:
                        f, ap, hold = f_hi, ap_hi, hold + (not clear)
                else:
                    hold = 0
            else:
                hold = 0
            if ap < (off if voiced else on):
                f = lo if f < lo else (hi if f > hi else f)
                out.append(f)
                prev, since, voiced = f, 0, True
            else:
                out.append(0.0)
                since, voiced = since + 1, False
        self.prev_f0, self.since, self.voiced, self.hold = prev, since, voiced, hold
        return np.asarray(out, dtype=np.float32)


class YinStream(F0Stream):
    """Live "yin" F0: push blocks of any size, get the frames that became complete.

    Non-finite samples are read as zeros (an audio callback must not raise); ``track`` refuses them.
    Memory is preallocated: a ring of decimated samples and a scratch buffer; each push allocates
    only per-batch temporaries (batches of at most 64 hops).
    """

    _PIECE_HOPS = 64

    def __init__(self, tracker: YinTracker, sample_rate: int, hop: int, f0_min: float, f0_max: float) -> None:
        self.sample_rate, self.hop, _ = check_grid(sample_rate, hop)
        f0_min, f0_max = check_f0_range(f0_min, f0_max, self.sample_rate)
        self.lookahead_samples = tracker.lookahead_samples(self.sample_rate)
        self._an = _YinAnalysis(self.sample_rate, f0_min, f0_max, tracker.lookahead_seconds,
                                tracker.analysis_rate, tracker.threshold)
        self._decider = _Decider(tracker, self.sample_rate / self.hop, f0_min, f0_max)
        self._piece = self.hop * self._PIECE_HOPS
        self._scratch = np.zeros(self._piece)
        span = self._an.span
        self._buf = np.zeros(span + self._piece // self._an.decim + 2)
        self._cols = np.arange(span)
        self.reset()

    @property
    def window_samples(self) -> int:
        """Input samples the analysis reads per frame (integration window + longest lag)."""
        return self._an.span * self._an.decim

    @property
    def frames_emitted(self) -> int:
        return self._next

    def reset(self) -> None:
        span = self._an.span
        self._buf[:span] = 0.0          # the zeros before sample 0
        self._base, self._fill = -span, span
        self._zi = None if self._an.ba is None else np.zeros(len(self._an.ba[1]) - 1)
        self._n_in = 0
        self._next = 0
        self._decider.reset()

    def push(self, block: np.ndarray) -> np.ndarray:
        x = np.asarray(block)
        if x.ndim != 1:
            raise AudioError(f"push needs a mono block of shape (n,); received shape {x.shape}. "
                             f"Mix down (block.mean(axis=0)) before pushing.")
        if x.shape[0] <= self._piece:
            return self._push_piece(x)
        outs = [self._push_piece(x[i:i + self._piece]) for i in range(0, x.shape[0], self._piece)]
        return np.concatenate(outs)

    def _push_piece(self, x: np.ndarray) -> np.ndarray:
        m = x.shape[0]
        if m == 0:
            return _EMPTY.copy()
        an = self._an
        xs = self._scratch[:m]
        xs[:] = x
        if not np.isfinite(xs).all():
            np.nan_to_num(xs, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if an.ba is not None:
            xs, self._zi = an.lfilter(an.ba[0], an.ba[1], xs, zi=self._zi)
        ds = xs[(-self._n_in) % an.decim::an.decim]
        self._append(ds)
        self._n_in += m
        L, hop = self.lookahead_samples, self.hop
        done = (self._n_in - L) // hop if self._n_in >= L else 0
        if done <= self._next:
            return _EMPTY.copy()
        ends = ((np.arange(self._next, done) + 1) * hop + L - 1) // an.decim
        seg = self._buf[(ends - an.span + 1 - self._base)[:, None] + self._cols]
        self._next = done
        return self._decider.run(*an.analyse(seg))

    def _append(self, ds: np.ndarray) -> None:
        k, span = ds.shape[0], self._an.span
        if self._fill + k > self._buf.shape[0]:
            self._buf[:span] = self._buf[self._fill - span:self._fill]
            self._base += self._fill - span
            self._fill = span
        self._buf[self._fill:self._fill + k] = ds
        self._fill += k


@register_f0_tracker
class YinTracker(F0Tracker):
    """Fast streaming YIN (see the module docstring).

    lookahead_seconds: samples read past the end of each hop (0 .. 0.020 s).
    threshold: CMNDF level under which a dip counts and a voiced run may start (YIN's threshold).
    release_threshold: looser level that keeps an already voiced run voiced (hysteresis).
    min_energy_db: frames quieter than this (mean square of the low-passed window, dB re full scale)
        are unvoiced.
    octave_margin: the other octave's dip may be this much worse (CMNDF units) and still be kept.
    octave_hold_seconds: the guard gives in to a sustained octave change after this long (0: no guard).
    octave_memory_seconds: how long the last voiced F0 stays the reference across unvoiced gaps.
    analysis_rate: the analysis runs at sample_rate / max(1, sample_rate // analysis_rate) Hz.
    """

    name = "yin"
    streaming = True

    def __init__(self, lookahead_seconds: float = 0.010, threshold: float = 0.15,
                 release_threshold: float = 0.3, min_energy_db: float = -60.0,
                 octave_margin: float = 0.05, octave_hold_seconds: float = 0.1,
                 octave_memory_seconds: float = 0.15, analysis_rate: int = 11025) -> None:
        checks: list[tuple[str, Any, float, float]] = [
            ("lookahead_seconds", lookahead_seconds, 0.0, _MAX_LOOKAHEAD_S),
            ("threshold", threshold, 1e-3, 1.0), ("release_threshold", release_threshold, 1e-3, 1.0),
            ("min_energy_db", min_energy_db, -200.0, 0.0), ("octave_margin", octave_margin, 0.0, 1.0),
            ("octave_hold_seconds", octave_hold_seconds, 0.0, 10.0),
            ("octave_memory_seconds", octave_memory_seconds, 0.0, 10.0),
            ("analysis_rate", analysis_rate, 4000, 192000)]
        for key, value, lo, hi in checks:
            try:
                ok = lo <= float(value) <= hi
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ParameterError(f"yin option {key}={value!r} is out of range; allowed [{lo:g}, {hi:g}].")
        if release_threshold < threshold:
            raise ParameterError(
                f"yin release_threshold ({release_threshold:g}) must be >= threshold ({threshold:g}); "
                f"it is the looser level that keeps a voiced run going.")
        self.lookahead_seconds = float(lookahead_seconds)
        self.threshold, self.release_threshold = float(threshold), float(release_threshold)
        self.min_energy_db, self.octave_margin = float(min_energy_db), float(octave_margin)
        self.octave_hold_seconds = float(octave_hold_seconds)
        self.octave_memory_seconds = float(octave_memory_seconds)
        self.analysis_rate = int(analysis_rate)

    def stream(self, sample_rate: int, hop: int, f0_min: float = 50.0, f0_max: float = 1100.0) -> YinStream:
        return YinStream(self, sample_rate, hop, f0_min, f0_max)

    def track(self, audio: np.ndarray, sample_rate: int, hop: int, n_frames: int,
              f0_min: float = 50.0, f0_max: float = 1100.0) -> np.ndarray:
        sample_rate, hop, n_frames = check_grid(sample_rate, hop, n_frames)
        x = check_audio(audio)
        return track_by_stream(self.stream(sample_rate, hop, f0_min, f0_max), x, hop, n_frames)
