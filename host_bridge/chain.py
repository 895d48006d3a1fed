"""``Chain``: native pedalboard plugins and our Python effects in one list.

pedalboard cannot host Python effects, so a Chain runs each maximal run of consecutive native
plugins as one ``pedalboard.Pedalboard`` and our effects (anything with
``process_planar``, e.g. :class:`host_bridge.effect.VoiceConversion`) in between.

Streaming (``reset=False``) works around pedalboard 0.9.26 (see PITFALLS): each native run is
prepared once with a full ``max_block_size`` block of silence and then reset (so Reverb/Delay
never see "a block larger than any before" and never re-prepare; the one empty call is that
reset, before any audio), arrays are always handed over channels-first with the channel count
known (so ``(2, 1)`` stays one stereo sample), and runs containing plugins with latency
(PitchShift, Resample, GSM/MP3 compressors) are fed fixed ``max_block_size`` blocks, primed with
silence until their output is steady; their latency (``max_block_size`` + what they hold back)
is measured then and reported. Streamed output of latency-free natives equals a one-call
``Pedalboard`` exactly; block codecs (GSMFullRateCompressor) frame the audio differently from a
one-call render, so only their latency is guaranteed.
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np
import pedalboard

from host_bridge.effect import check_rate
from host_bridge.layout import CHANNELS_FIRST, LayoutMemory
from svc_dsp.engine.processor import run_blocks
from svc_dsp.errors import AudioError, ParameterError

_MAX_PRIME_BLOCKS = 64


def _is_native(p: Any) -> bool:
    return isinstance(p, pedalboard.Plugin)


def _is_ours(p: Any) -> bool:
    return hasattr(p, "process_planar") and hasattr(p, "latency_at")


class _NativeStage:
    """A run of native plugins streamed with stable block sizes; output = input delayed by latency."""

    def __init__(self, plugins: list[Any], sr: int, channels: int, block: int) -> None:
        self.board = pedalboard.Pedalboard(plugins)
        self.sr, self.C, self.block = sr, channels, block
        self.board.reset()
        zeros = np.zeros((channels, block), np.float32)
        got = self.board.process(zeros, sr, block, reset=False).shape[1]
        if got == block:  # no latency: state back to fresh without un-preparing (no empty chunk later)
            self.board.process(np.zeros((channels, 0), np.float32), sr, block, reset=True)
            self.latency, self.fixed = 0, False
            return
        fed, out = block, got
        for _ in range(_MAX_PRIME_BLOCKS):  # until the plugin returns whole blocks: steady lag
            fed += block
            got = self.board.process(zeros, sr, block, reset=False).shape[1]
            out += got
            if got == block:
                break
        else:
            raise AudioError(f"native plugins {plugins} returned no steady output after {fed} samples of "
                             f"silence; they cannot be streamed in a Chain (use process(..., reset=True))")
        self.fixed = True  # the primed silence now sits in the plugins' delay lines
        self.latency = block + (fed - out)
        self.inbuf = np.zeros((channels, 0), np.float32)
        self.outbuf = np.zeros((channels, block), np.float32)  # block samples of input buffering

    def push(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[1]
        if not self.fixed:
            return self.board.process(x, self.sr, self.block, reset=False)
        self.inbuf = np.concatenate([self.inbuf, x], axis=1)
        while self.inbuf.shape[1] >= self.block:
            y = self.board.process(np.ascontiguousarray(self.inbuf[:, :self.block]), self.sr, self.block, reset=False)
            self.inbuf = self.inbuf[:, self.block:]
            self.outbuf = np.concatenate([self.outbuf, y], axis=1)
        if self.outbuf.shape[1] < n:  # a plugin held back more than at priming: keep length, count it
            self.outbuf = np.concatenate([np.zeros((self.C, n - self.outbuf.shape[1]), np.float32), self.outbuf], 1)
        y, self.outbuf = self.outbuf[:, :n], self.outbuf[:, n:]
        return y


class _EffectStage:
    def __init__(self, effect: Any, sr: int) -> None:
        self.effect = effect
        self.latency = int(effect.latency_at(sr))
        self.sr = sr

    def push(self, x: np.ndarray) -> np.ndarray:
        return self.effect.process_planar(x, self.sr, x.shape[1], False)


class Chain:
    """A list of plugins: native pedalboard plugins and our effects, in any order.

    Same surface as ``pedalboard.Pedalboard``: ``process(input_array, sample_rate,
    buffer_size=8192, reset=True)``, ``__call__``, ``reset()``, list operations,
    ``is_effect``. Layout, dtype and return rules are those of
    :meth:`host_bridge.effect.VoiceConversion.process`.

    ``reset=True``: each run of native plugins is processed by a ``pedalboard.Pedalboard``
    (which compensates its own latency) and each of our effects latency-compensated, so the
    output is aligned with the input and has its length. With native plugins only, the result
    is exactly ``pedalboard.Pedalboard(plugins).process(...)``.

    ``reset=False``: streaming, as for our effect: output has the input's length, delayed by
    :attr:`latency_samples` (the sum over the plugins). A new stream (state cleared, natives
    re-primed) starts on the first such call after construction, :meth:`reset`, a
    ``reset=True`` call, a change of the plugin list, the sample rate or the channel count.
    Blocks larger than ``max_block_size`` are split.
    """

    is_effect = True
    is_instrument = False

    def __init__(self, plugins: Iterable[Any] | None = None, *, max_block_size: int = 8192) -> None:
        self._plugins: list[Any] = []
        for p in plugins or []:
            self.append(p)
        if int(max_block_size) < 1:
            raise ParameterError(f"max_block_size {max_block_size!r}; allowed: >= 1")
        self.max_block_size = int(max_block_size)
        self._layout = LayoutMemory()
        self._stages: list[Any] | None = None
        self._key: tuple[Any, ...] | None = None
        self._board: Any = None
        self._board_key: tuple[int, ...] | None = None

    # -- list ---------------------------------------------------------------------------
    def _check(self, p: Any) -> Any:
        if not (_is_native(p) or _is_ours(p)):
            raise ParameterError(f"Chain holds pedalboard plugins and svc-host effects (VoiceConversion, Chain); "
                                 f"received {type(p).__name__}")
        if any(q is p for q in self._plugins):
            raise ParameterError(f"{p!r} is already in this chain; create a second instance instead")
        return p

    def append(self, plugin: Any) -> None:
        self._plugins.append(self._check(plugin))

    def insert(self, index: int, plugin: Any) -> None:
        self._plugins.insert(index, self._check(plugin))

    def remove(self, plugin: Any) -> None:
        self._plugins.remove(plugin)

    def __len__(self) -> int:
        return len(self._plugins)

    def __getitem__(self, i: int) -> Any:
        return self._plugins[i]

    def __iter__(self) -> Iterator[Any]:
        return iter(list(self._plugins))

    @property
    def plugins(self) -> list[Any]:
        return list(self._plugins)

    def effects(self) -> list[Any]:
        """Our effects in the chain (where automation goes)."""
        return [p for p in self._plugins if _is_ours(p)]

    def runs(self) -> list[tuple[str, Any]]:
        runs: list[tuple[str, Any]] = []
        for p in self._plugins:
            if _is_native(p) and runs and runs[-1][0] == "native":
                runs[-1][1].append(p)
            else:
                runs.append(("native", [p]) if _is_native(p) else ("ours", p))
        return runs

    # -- latency ------------------------------------------------------------------------
    @property
    def latency_samples(self) -> int:
        """Delay of ``reset=False`` output at the last sample rate and channel count."""
        if self._stages is None:
            if self._key is None:
                raise AudioError("latency_samples depends on the sample rate; process audio first")
            self._prepare(*self._key[1:3])
        return sum(s.latency for s in self._stages)  # type: ignore[union-attr]

    def stage_latencies(self) -> list[int]:
        """Latency of each stage (runs of natives, our effects), after the first streaming call."""
        return [s.latency for s in self._stages or []]

    # -- processing -----------------------------------------------------------------------
    def reset(self) -> None:
        """Clear every plugin's state and the layout memory; the next call starts a new stream."""
        for p in self._plugins:
            p.reset()
        self._stages = None
        self._layout.clear()

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192,
                reset: bool = True) -> np.ndarray:
        """See the class docstring; returns float32 in the caller's layout, same length."""
        runs = self.runs()
        if reset and len(runs) == 1 and runs[0][0] == "native":
            a = np.asarray(input_array)
            if a.ndim == 2:
                try:  # remember channels and layout for later reset=False calls, as the board does
                    lay = self._layout.detect(a.shape)
                    self._layout.channels = a.shape[0] if lay == CHANNELS_FIRST else a.shape[1]
                except AudioError:
                    pass  # the board raises its own error below
            elif a.ndim == 1:
                self._layout.channels = 1
            self._stages, self._key = None, self._stream_key(int(sample_rate), max(1, self._layout.channels))
            return self._native_board(runs[0][1]).process(input_array, sample_rate, buffer_size, reset=True)
        x, layout = self._layout.to_channels_first(input_array)
        return LayoutMemory.restore(self.process_planar(x, sample_rate, buffer_size, reset), layout)

    def __call__(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192,
                 reset: bool = True) -> np.ndarray:
        """Alias for :meth:`process`."""
        return self.process(input_array, sample_rate, buffer_size, reset)

    def latency_at(self, sample_rate: int, channels: int = 2) -> int:
        self._prepare(int(sample_rate), channels)
        return self.latency_samples

    def _native_board(self, plugins: list[Any]) -> Any:
        key = tuple(id(p) for p in plugins)
        if self._board_key != key:  # one persistent board: its layout memory lasts like a user's
            self._board, self._board_key = pedalboard.Pedalboard(plugins), key
        return self._board

    def process_planar(self, x: np.ndarray, sample_rate: Any, buffer_size: int = 8192,
                       reset: bool = True) -> np.ndarray:
        sr = check_rate(sample_rate)
        C, n = x.shape
        if reset:
            self._stages, self._key = None, self._stream_key(sr, C)
            for kind, item in self.runs():
                if kind == "ours":
                    x = item.process_planar(x, sr, buffer_size, True)
                elif n > 0:
                    pad = max(0, C + 1 - n)  # n <= C is ambiguous to pedalboard; causal: padding is harmless
                    xp = np.concatenate([x, np.zeros((C, pad), np.float32)], 1) if pad else x
                    board = pedalboard.Pedalboard(item)
                    x = board.process(np.ascontiguousarray(xp), sr, int(buffer_size), reset=True)[:, :n]
            return np.ascontiguousarray(x, dtype=np.float32)
        if self._stages is None or self._key != self._stream_key(sr, C):
            self._prepare(sr, C)
        if n == 0:
            return np.zeros((C, 0), np.float32)
        return run_blocks(self._push, x, self.max_block_size)

    def _push(self, y: np.ndarray) -> np.ndarray:
        """One block (at most ``max_block_size``) through every stage of the running stream."""
        for st in self._stages or []:
            y = st.push(np.ascontiguousarray(y, dtype=np.float32))
        return y

    def _stream_key(self, sr: int, channels: int) -> tuple[Any, ...]:
        """What a running stream depends on: the plugin list, the rate and the channel count."""
        return tuple(id(p) for p in self._plugins), sr, channels

    def begin_new_stream(self) -> None:
        """The next ``reset=False`` call starts a new stream (layout memory is kept); the
        same internal method as :class:`~host_bridge.effect.VoiceConversion`'s, for nesting."""
        self._stages = None

    def _prepare(self, sr: int, channels: int) -> None:
        stages: list[Any] = []
        for kind, item in self.runs():
            if kind == "ours":
                item.begin_new_stream()
                stages.append(_EffectStage(item, sr))
            else:
                stages.append(_NativeStage(item, sr, channels, self.max_block_size))
        self._stages, self._key = stages, self._stream_key(sr, channels)

    # earlier private names, still answered
    _process_cf = process_planar
    _begin_new_stream = begin_new_stream
    _runs = runs

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self._plugins)
        return f"<host_bridge.chain.Chain with {len(self._plugins)} plugins: [{inner}]>"
