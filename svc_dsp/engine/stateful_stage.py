"""The model-rate part of the engine for stateful (causal) voice models.

Takes model-rate input samples (already DC-blocked) in any amounts, returns the converted
voice for every frame that became computable: F0 (stream tracker, or a precomputed track
for offline trackers) -> transpose -> voice model (one step per hop, state carried).
Loudness matching and the gate follow in :class:`svc_dsp.engine.processor.ModelStage`,
the same for both regimes. Frame-rate parameters (transpose, speaker weights) are smoothed
per frame from their targets; the synthesiser interpolates them per sample. Offline and
streaming use this same stage, so they agree.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from svc_dsp.errors import ParameterError
from svc_dsp.features.f0 import get_f0_tracker
from svc_dsp.features.pitch import transpose
from svc_dsp.models.base import StatefulModel

PARAM_SMOOTH_S = 0.030  # time constant of frame-rate parameter smoothing


class StatefulStage:
    """Stateful model stage on the model's frame grid.

    push(x: float32 (n,) at model rate) -> float32 (k*hop,) converted samples of output
    frames o, o+1, ... (o starts at 0; frames before the signal start are computed for the
    model's state but not returned).
    ``f0_track``: a precomputed F0 per frame (offline trackers); else ``f0_method`` must be a
    streaming tracker.
    """

    def __init__(self, model: StatefulModel, f0_method: str, targets: Callable[[], dict[str, Any]],
                 f0_track: np.ndarray | None = None, hops_per_step: int = 1) -> None:
        self.model = model
        self.sr, self.hop = model.sample_rate, model.hop_size
        # hops computed together: 1 = lowest latency; 2 halves the per-call overhead of the
        # model runtime for one more hop of latency
        self.group = max(1, int(hops_per_step))
        self.delay = int(model.delay_hops)
        self.targets = targets
        self.f0_track = f0_track
        self.extra = 0  # hops the model waits for F0 beyond its own lookahead (trackers that read further)
        lo, hi = model.f0_range
        if f0_track is None:
            tracker = get_f0_tracker(f0_method)
            if not tracker.streaming:
                raise ParameterError(f"f0_method '{f0_method}' is an offline tracker; streaming needs a streaming "
                                     f"tracker such as 'yin'")
            la = tracker.lookahead_samples(self.sr)
            # a tracker that reads further ahead than the model delays the model by whole hops: constant
            # added latency per method, same output (each hop is computed later, not differently)
            self.extra = max(0, -(-(la - self.delay * self.hop) // self.hop))
            self.f0_stream = tracker.stream(self.sr, self.hop, lo, hi)
        self.a_param = math.exp(-self.hop / self.sr / PARAM_SMOOTH_S)
        self.reset()

    #: output samples emitted before the signal's first frame (none: warm-up frames are not returned)
    lead_samples = 0

    def reset(self) -> None:
        self.pending = np.zeros(0, np.float32)
        self.m = 0  # hops consumed
        self.state = self.model.init_state()
        self.f0_frames = np.zeros(self.delay, np.float32)  # f0 for frames -delay..-1 are 0
        if self.f0_track is None:
            self.f0_stream.reset()
        t = self.targets()
        self.transpose = float(t["transpose"])
        self._spk_key: tuple[Any, Any] | None = None
        self.spk = self._speaker_target(t).copy()

    def input_needed(self, s: np.ndarray) -> np.ndarray:
        """Last model-input index that model-output sample ``s`` needs (elementwise)."""
        m = s // self.hop + self.delay  # the hop whose completion lets frame s//hop be computed
        return ((m // self.group) + 1) * self.group * self.hop + self.extra * self.hop - 1

    def _speaker_target(self, t: Any) -> np.ndarray:
        """The speaker weights the targets ask for (float64 (S,)); recomputed only when the
        ``speaker``/``speaker_mix`` values change (the store swaps in new objects then)."""
        key = (t["speaker"], t["speaker_mix"])
        last = self._spk_key
        if last is None or key[0] is not last[0] or key[1] is not last[1]:
            self._spk_t = self.model.speaker_weights(*key).astype(np.float64)
            self._spk_key = key
        return self._spk_t

    def _frame_params(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame smoothed transpose (st) and speaker weights (S, k)."""
        t = self.targets()
        spk_t = self._speaker_target(t)
        if self.transpose == float(t["transpose"]) and np.array_equal(self.spk, spk_t):
            # settled: the one-pole gives exactly the target (target + 0 * w)
            return np.full(k, self.transpose), np.repeat(spk_t.astype(np.float32)[:, None], k, axis=1)
        a = self.a_param
        w = a ** np.arange(1, k + 1)  # one-pole response over k frames from the current value
        tr = float(t["transpose"]) + (self.transpose - float(t["transpose"])) * w
        sp = spk_t[:, None] + (self.spk - spk_t)[:, None] * w[None, :]
        self.transpose, self.spk = float(tr[-1]), sp[:, -1].copy()
        return tr, sp.astype(np.float32)

    def push(self, x: np.ndarray) -> np.ndarray:
        hop, d = self.hop, self.delay
        if self.extra:  # the tracker gets audio as it arrives; the model runs once the hops' F0 is out
            self.f0_frames = np.concatenate([self.f0_frames, self.f0_stream.push(x).astype(np.float32)])
        self.pending = np.concatenate([self.pending, x]) if self.pending.size else x
        k = (min(self.pending.shape[0] // hop, self.f0_frames.shape[0] if self.extra else 1 << 62)
             // self.group) * self.group
        if k == 0:
            return np.zeros(0, np.float32)
        xin = self.pending[: k * hop]
        self.pending = self.pending[k * hop:]
        m0 = self.m
        self.m += k
        if self.extra:
            new_f0 = np.zeros(0, np.float32)
        elif self.f0_track is None:
            new_f0 = self.f0_stream.push(xin)
        else:
            lo = max(0, m0 - d)
            hi = max(0, m0 + k - d)
            new_f0 = np.zeros(hi - lo, np.float32)
            avail = self.f0_track[lo:min(hi, self.f0_track.shape[0])]
            new_f0[: avail.shape[0]] = avail  # frames before 0 are already queued as zeros
        self.f0_frames = np.concatenate([self.f0_frames, new_f0.astype(np.float32)])
        f0 = self.f0_frames[:k]
        self.f0_frames = self.f0_frames[k:]
        tr, sp = self._frame_params(k)
        if self.f0_track is None and not tr.any():
            f0 = np.where(f0 > 0, f0, np.float32(0.0)).astype(np.float32)  # as transpose(f0, 0) for finite F0
        else:
            f0 = transpose(f0, tr).astype(np.float32)
        wave, self.state = self.model.process_hops(
            xin, f0, sp, self.state, index_ratio=float(self.targets().get("index_ratio", 0.0)))
        # frames o = m - d; o < 0 lie before the signal: they only warm the state
        first_valid = max(0, d - m0)
        return wave[first_valid * hop:] if first_valid < k else np.zeros(0, np.float32)
