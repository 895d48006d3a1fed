"""The windowed regime: streaming for non-causal models (e.g. so-vits-svc).

Every ``step`` model-rate samples the stage re-infers a bounded window of recent audio
(``context`` + step + crossfade + SOLA search + ``lookahead``), takes the newest
step + crossfade + search samples of the result (the lookahead tail is discarded),
finds the offset in the SOLA search range that best continues the previous output
(normalised cross-correlation), and splices with sin^2/cos^2 fades. F0 is computed once
per frame by a streaming tracker and cached, so windows never re-track pitch. The input
arrives DC-blocked, and loudness matching and the gate follow in
:class:`svc_dsp.engine.processor.ModelStage`, as for the stateful regime.

The reported latency is the nominal one (SOLA offset 0); the splice can move the
timing by at most the search length. It never depends on parameter values.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from svc_dsp.errors import ParameterError
from svc_dsp.features.f0 import get_f0_tracker
from svc_dsp.features.pitch import transpose
from svc_dsp.models.base import WindowedModel


class WindowSettings:
    """Window geometry in seconds, rounded to whole hops of the model.

    context: audio before the step that the model sees; crossfade 20-40 ms; search at
    least one period of the lowest expected note; lookahead: audio after the step.
    """

    def __init__(self, step: float = 0.10, context: float = 0.60, crossfade: float = 0.030,
                 search: float = 0.020, lookahead: float = 0.020) -> None:
        if not 0.020 <= crossfade <= 0.040:
            raise ParameterError(f"crossfade {crossfade * 1000:.0f} ms; allowed 20..40 ms")
        self.step, self.context, self.crossfade, self.search, self.lookahead = step, context, crossfade, search, lookahead

    def samples(self, sample_rate: int, hop: int, f0_min: float) -> dict[str, int]:
        def hops(sec: float) -> int:
            return max(1, int(math.ceil(sec * sample_rate / hop))) * hop

        search = hops(max(self.search, 1.0 / f0_min))  # at least one period of the lowest note
        return {"step": hops(self.step), "context": hops(self.context), "crossfade": hops(self.crossfade),
                "search": search, "lookahead": hops(self.lookahead)}


class WindowedStage:
    """Model-rate stage for ``regime == "windowed"`` models (see module doc).

    push(x (n,) model rate) -> converted samples, ``step`` at a time.
    """

    def __init__(self, model: WindowedModel, f0_method: str, targets: Callable[[], dict[str, Any]],
                 settings: WindowSettings | None = None) -> None:
        self.model, self.targets = model, targets
        self.sr, self.hop = model.sample_rate, model.hop_size
        lo, hi = model.f0_range
        tracker = get_f0_tracker(f0_method)
        if not tracker.streaming:
            raise ParameterError(f"f0_method '{f0_method}' is offline-only; streaming needs e.g. 'yin'")
        self.tracker = tracker.stream(self.sr, self.hop, lo, hi)
        hook = getattr(model, "window_settings", None)  # the voice's own geometry unless the caller gives one
        suggested = hook() if callable(hook) else None
        settings = settings or (WindowSettings(**suggested) if suggested else WindowSettings())
        g = settings.samples(self.sr, self.hop, lo)
        self.step, self.context, self.xfade = g["step"], g["context"], g["crossfade"]
        self.search, self.ahead = g["search"], g["lookahead"]
        self.window = self.context + self.step + self.xfade + self.search + self.ahead
        if self.tracker.lookahead_samples > self.ahead + self.xfade + self.search:
            raise ParameterError("F0 tracker lookahead exceeds the window's lookahead")
        t = np.linspace(0.0, 1.0, self.xfade, endpoint=False) + 0.5 / self.xfade
        self.fade_in = np.sin(0.5 * np.pi * t) ** 2
        self.fade_out = 1.0 - self.fade_in  # = cos^2
        # models that can skip the discarded parts of a window (``keep=`` of convert_window, e.g.
        # so-vits: the decoder then runs on the kept frames only) are told which samples are kept
        import inspect

        try:
            params = inspect.signature(model.convert_window).parameters
        except (TypeError, ValueError):
            params = {}
        self._keep_kw = "keep" in params
        # the first windows reach back before the signal: their first ``drop`` output samples are
        # (nominally, SOLA offset 0) earlier than input sample 0, and are not returned
        self.drop = self.xfade + self.search + self.ahead
        self.reset()

    #: output samples returned before the signal's first sample (none: see ``drop``)
    lead_samples = 0

    def reset(self) -> None:
        self.hist = np.zeros(self.window, np.float32)  # newest model-rate input, last sample newest
        self.pending = 0  # samples received since the last step
        self.received = 0
        self.f0 = np.zeros(0, np.float32)  # cached F0 of frames 0..len-1
        self.tail: np.ndarray | None = None  # previous output beyond what was emitted
        self.to_drop = self.drop
        self.tracker.reset()

    def input_needed(self, s: np.ndarray) -> np.ndarray:
        """Last model-input index that model-output sample ``s`` needs (nominal alignment): output s
        is returned by the window inferred after input sample ((s + drop) // step + 1) * step - 1."""
        return ((s + self.drop) // self.step + 1) * self.step - 1

    def _window_f0(self, w0: int) -> np.ndarray:
        """F0 for the frames of a window starting at model sample w0 (a multiple of hop)."""
        n = self.window // self.hop
        first = w0 // self.hop
        out = np.zeros(n, np.float32)
        lo, hi = max(0, first), min(first + n, self.f0.shape[0])
        if hi > lo:
            out[lo - first:hi - first] = self.f0[lo:hi]
        return out

    def _splice(self, seg: np.ndarray) -> np.ndarray:
        X, S, H = self.xfade, self.search, self.step
        if self.tail is None:
            off = 0
            out = seg[:H].copy()
        else:
            # normalised cross-correlation of the previous tail against each candidate offset
            cand = np.lib.stride_tricks.sliding_window_view(seg[: S + X], X)[:S]
            num = cand @ self.tail
            den = np.sqrt(np.einsum("ij,ij->i", cand, cand) + 1e-9)
            off = int(np.argmax(num / den))
            out = seg[off:off + H].copy()
            out[:X] = out[:X] * self.fade_in + self.tail * self.fade_out
        self.tail = seg[off + H:off + H + X].copy()
        return out

    def push(self, x: np.ndarray) -> np.ndarray:
        outs = []
        pos = 0
        while pos < x.shape[0]:
            take = min(x.shape[0] - pos, self.step - self.pending)
            chunk = x[pos:pos + take]
            self.hist = np.concatenate([self.hist[take:], chunk])
            new_f0 = self.tracker.push(chunk)
            if new_f0.shape[0]:
                self.f0 = np.concatenate([self.f0, new_f0])
            self.pending += take
            self.received += take
            pos += take
            if self.pending == self.step:
                self.pending = 0
                outs.append(self._infer())
        y = np.concatenate(outs) if outs else np.zeros(0, np.float32)
        if self.to_drop and y.shape[0]:
            d = min(self.to_drop, y.shape[0])
            self.to_drop -= d
            y = y[d:]
        return y

    def _infer(self) -> np.ndarray:
        t = self.targets()
        w0 = self.received - self.window
        f0 = self._window_f0(w0)
        f0 = transpose(f0, float(t["transpose"])).astype(np.float32)
        spk = self.model.speaker_weights(t["speaker"], t["speaker_mix"])
        kw: dict[str, Any] = {"keep": (self.context, self.window - self.ahead)} if self._keep_kw else {}
        y = self.model.convert_window(self.hist, f0, spk,
                                      cluster_ratio=float(t.get("cluster_ratio", 0.0)),
                                      index_ratio=float(t.get("index_ratio", 0.0)), **kw)
        seg = y[self.context: self.window - self.ahead]  # step + crossfade + search samples
        # keep a bounded F0 cache: frames older than the window are never needed again
        keep_from = max(0, (w0 + self.step) // self.hop - 1)
        if keep_from > 0 and self.f0.shape[0] > 4 * (self.window // self.hop):
            self.f0 = self.f0[keep_from:]
            self.received -= keep_from * self.hop
        return self._splice(seg.astype(np.float32)).astype(np.float32)
