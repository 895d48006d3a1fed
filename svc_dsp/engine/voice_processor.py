"""``VoiceProcessor``: one voice model and one parameter store, run as a whole signal or as a
stream: what the effect, a chain's effect stage and render hold instead of their own engine.

- the :class:`~svc_dsp.engine.processor.ParameterStore` is the one source of values: the
  :class:`~svc_dsp.engine.streaming.StreamingConverter` it builds (one per sample rate) reads
  the same store, so a value is validated once and reaches the running stream with that one swap;
  a change of ``f0_method`` (fixed inside a stream) starts a new store and a new stream;
- :meth:`VoiceProcessor.render`: a whole (C, n) signal, time-aligned with the input: the stream
  run latency-compensated (:func:`~svc_dsp.engine.processor.run_compensated`), or the offline
  :class:`~svc_dsp.engine.converter.Converter` over the same store for offline F0 trackers;
- :meth:`VoiceProcessor.stream`: continue one stream; a new one starts on the first call, after
  :meth:`begin_new_stream` / :meth:`reset` / :meth:`render`, and on a change of rate, channel
  count or ``f0_method``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from svc_dsp.engine.converter import Converter
from svc_dsp.engine.parameters import parameter
from svc_dsp.engine.processor import ParameterStore, run_blocks, run_compensated
from svc_dsp.engine.streaming import StreamingConverter
from svc_dsp.errors import ParameterError
from svc_dsp.features.f0 import get_f0_tracker
from svc_dsp.models.base import VoiceModel


class VoiceProcessor:
    """model: a loaded VoiceModel; backend: "torch" or "onnx" for the streams; max_block_size: the
    largest block handed to the engine; values: initial parameter values (validated)."""

    def __init__(self, model: VoiceModel, *, backend: str = "torch", max_block_size: int = 8192,
                 values: Mapping[str, Any] | None = None) -> None:
        self.model, self.backend, self.max_block_size = model, backend, max(1, int(max_block_size))
        self.store = ParameterStore(model, values)
        self.engine: StreamingConverter | None = None
        self.sample_rate: int | None = None  # the rate of the last run (or prepare)
        self._stream: tuple[int, int] | None = None  # (rate, channels) of the running stream
        self._latencies: dict[int, int] = {}

    # -- parameters -------------------------------------------------------------------------
    def set(self, name: str, value: Any) -> Any:
        """Validate and set one value; returns it as stored. ParameterError / UnknownSpeakerError."""
        p = parameter(name)
        if p.name == "f0_method" and p.validate(value) != self.store.get("f0_method"):
            self._new_store({p.name: value})
            return self.store.get(p.name)
        return self.store.set(name, value)

    def update(self, values: Mapping[str, Any]) -> None:
        """Validate every value, then set them all (nothing changes on an error)."""
        f0 = [v for k, v in values.items() if parameter(k).name == "f0_method"]
        if f0 and parameter("f0_method").validate(f0[-1]) != self.store.get("f0_method"):
            self._new_store(values)
        else:
            self.store.update(values)

    def _new_store(self, changes: Mapping[str, Any]) -> None:
        self.store = self.store.fork(changes)  # validates first: on an error nothing changes
        self.engine, self._stream = None, None

    def get(self, name: str) -> Any:
        return self.store.get(name)

    def targets(self) -> Mapping[str, Any]:
        return self.store.targets()

    @property
    def streams(self) -> bool:
        """True when ``f0_method`` is a streaming tracker (:meth:`stream` works)."""
        return bool(get_f0_tracker(self.store.get("f0_method")).streaming)

    # -- latency ----------------------------------------------------------------------------
    def latency_at(self, sample_rate: int) -> int:
        """Stream latency in samples at ``sample_rate`` (parameters and block size never change it)."""
        sr = int(sample_rate)
        if self.engine is not None and self.engine.sample_rate == sr:
            return int(self.engine.latency_samples)
        if sr not in self._latencies:  # a default engine measures it
            self._latencies[sr] = int(StreamingConverter(self.model, sr, 1, backend="torch",
                                                         f0_method="yin").latency_samples)
        return self._latencies[sr]

    # -- running ----------------------------------------------------------------------------
    def prepare(self, sample_rate: int) -> None:
        """Build the engine for ``sample_rate`` now (no allocation on the first call)."""
        self.sample_rate = int(sample_rate)
        if self.streams:
            self._engine_for(self.sample_rate)

    def _engine_for(self, sr: int) -> StreamingConverter:
        if self.engine is None or self.engine.sample_rate != sr:
            self.engine = StreamingConverter(self.model, sr, self.max_block_size, backend=self.backend,
                                             store=self.store)
            self._stream = None
        return self.engine

    def begin_new_stream(self) -> None:
        """The next :meth:`stream` call starts a new stream."""
        self._stream = None

    def reset(self) -> None:
        """Clear the engine's state; the next :meth:`stream` call starts a new stream."""
        if self.engine is not None:
            self.engine.reset()
        self._stream = None

    def render(self, x: np.ndarray, sample_rate: int, block: int) -> np.ndarray:
        """x (C, n) float32 -> (C, n) float32 time-aligned with x, from a fresh state; ``block``:
        the largest block handed to the engine (speed only)."""
        sr = self.sample_rate = int(sample_rate)
        self._stream = None
        if x.shape[1] == 0:
            return np.zeros((x.shape[0], 0), np.float32)
        if not self.streams:
            return Converter(self.model, store=self.store).convert(x, sr)
        eng = self._engine_for(sr)
        eng.reset()
        out = run_compensated(eng.process, eng.latency_samples, x, min(int(block), self.max_block_size))
        eng.reset()  # the flush is not part of any stream
        return out

    def stream(self, x: np.ndarray, sample_rate: int, block: int) -> np.ndarray:
        """x (C, n) float32 -> (C, n) float32: the stream continued, delayed by :meth:`latency_at`."""
        if not self.streams:
            raise ParameterError(f"f0_method '{self.store.get('f0_method')}' is an offline tracker and needs the "
                                 f"whole signal; use process(..., reset=True), or f0_method='yin' for streaming")
        sr = self.sample_rate = int(sample_rate)
        eng = self._engine_for(sr)
        if self._stream != (sr, x.shape[0]):
            eng.reset()
            self._stream = (sr, x.shape[0])
        return run_blocks(eng.process, x, min(int(block), self.max_block_size))
