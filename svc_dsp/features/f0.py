"""F0 trackers: the abstract base, the streaming interface and the registry of named kinds.

The frame grid (shared with every other feature of the engine):

- audio is mono, shape (N,), N samples at ``sample_rate`` Hz;
- frame j describes the signal around sample ``(j + 1) * hop`` (the END of the j-th hop);
- an input of N samples has ``n_frames_for(N, hop) == ceil(N / hop)`` frames;
- a streaming tracker computes frame j from samples with index below
  ``(j + 1) * hop + lookahead_samples`` only; samples before 0 or past the end count as zeros.

New kinds subclass :class:`F0Tracker` and plug in with :func:`register_f0_tracker`;
:func:`get_f0_tracker` builds one by name. ``svc_dsp.features`` imports the built-in kinds
("yin", "harvest", "dio"), so they are registered as soon as the package is imported.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from svc_dsp.errors import AudioError, ParameterError

__all__ = [
    "F0Stream",
    "F0Tracker",
    "check_audio",
    "check_grid",
    "f0_tracker_names",
    "get_f0_tracker",
    "n_frames_for",
    "register_f0_tracker",
]


def n_frames_for(n_samples: int, hop: int) -> int:
    """Number of frames on the grid for ``n_samples`` samples: ``ceil(n_samples / hop)``."""
    return -(-int(n_samples) // int(hop))


def check_grid(sample_rate: Any, hop: Any, n_frames: Any | None = None) -> tuple[int, int, int]:
    """Validate the grid arguments; returns ``(sample_rate, hop, n_frames)`` as ints (n_frames -1 if None)."""
    for name, value in (("sample_rate", sample_rate), ("hop", hop)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ParameterError(
                f"{name} must be a positive integer; received {value!r}. "
                f"Pass e.g. sample_rate=24000, hop=120.")
    if n_frames is None:
        return int(sample_rate), int(hop), -1
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 0:
        raise ParameterError(
            f"n_frames must be a non-negative integer; received {n_frames!r}. "
            f"Use n_frames_for(len(audio), hop) for the standard grid.")
    return int(sample_rate), int(hop), int(n_frames)


def check_audio(audio: Any) -> np.ndarray:
    """Return ``audio`` as a float64 (N,) array, or raise AudioError for other shapes or non-finite values."""
    x = np.asarray(audio)
    if x.ndim != 1:
        raise AudioError(
            f"F0 and loudness features need mono audio of shape (N,); received shape {x.shape}. "
            f"Mix down first, e.g. audio.mean(axis=0) for (C, N).")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise AudioError(f"audio must hold real numbers; received dtype {x.dtype}.")
    x = x.astype(np.float64, copy=False)
    if x.size and not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise AudioError(
            f"audio holds {bad} NaN/inf samples (of {x.size}); features need finite samples. "
            f"Clean the input first, e.g. np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0).")
    return x


def track_by_stream(stream: "F0Stream", audio: np.ndarray, hop: int, n_frames: int,
                    dtype: Any = np.float64, chunk_frames: int | None = None) -> np.ndarray:
    """Whole-signal F0 of a streaming tracker: push ``audio`` (N,) zero-padded to the
    ``n_frames * hop + lookahead`` samples the stream needs, ``chunk_frames`` frames of audio per
    push (None: one push), and return the first ``n_frames`` values in Hz (0 = unvoiced)."""
    if n_frames == 0:
        return np.zeros(0, dtype=np.float32)
    need = n_frames * hop + stream.lookahead_samples
    padded = np.zeros(need, dtype=dtype)
    padded[:min(need, audio.shape[0])] = audio[:need]
    if chunk_frames is None:
        return stream.push(padded)
    step = chunk_frames * hop                     # bounded memory per push
    return np.concatenate([stream.push(padded[s:s + step]) for s in range(0, need, step)])[:n_frames]


def check_f0_range(f0_min: Any, f0_max: Any, sample_rate: int) -> tuple[float, float]:
    """Validate an F0 search range in Hz; returns it as floats."""
    try:
        lo, hi = float(f0_min), float(f0_max)
    except (TypeError, ValueError):
        raise ParameterError(f"f0_min/f0_max must be numbers in Hz; received {f0_min!r}, {f0_max!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0.0 < lo < hi):
        raise ParameterError(
            f"F0 range must satisfy 0 < f0_min < f0_max; received f0_min={f0_min!r}, f0_max={f0_max!r} Hz. "
            f"The usual singing range is f0_min=50, f0_max=1100.")
    if hi > sample_rate / 4:
        raise ParameterError(
            f"f0_max={hi:g} Hz is too high for sample_rate={sample_rate} (at most sample_rate/4 = "
            f"{sample_rate / 4:g} Hz). Lower f0_max or resample the audio up.")
    return lo, hi


class F0Stream(ABC):
    """Block-by-block F0 of one live signal.

    Made by :meth:`F0Tracker.stream`. Frame j is emitted as soon as samples up to index
    ``(j + 1) * hop + lookahead_samples - 1`` have been pushed, and its value equals frame j of
    :meth:`F0Tracker.track` on the same signal, bit for bit, whatever the block sizes.
    """

    sample_rate: int
    hop: int
    lookahead_samples: int

    @abstractmethod
    def push(self, block: np.ndarray) -> np.ndarray:
        """Feed the next samples (shape (n,), any n >= 0, any real dtype).

        Returns float32 (k,): F0 in Hz (0.0 where unvoiced) of the k frames that became complete,
        in order; k may be 0.
        """

    @abstractmethod
    def reset(self) -> None:
        """Forget all pushed audio: the next push starts a new signal at sample 0."""

    @property
    @abstractmethod
    def frames_emitted(self) -> int:
        """How many frames push has returned since construction or the last reset."""


class F0Tracker(ABC):
    """A named F0 estimator on the frame grid (see the module docstring).

    ``streaming`` is True when frame j depends only on samples below
    ``(j + 1) * hop + lookahead_samples(sample_rate)``; such trackers also offer :meth:`stream`.
    Offline trackers (``streaming = False``) may read the whole signal.
    """

    name: ClassVar[str]
    streaming: ClassVar[bool]
    lookahead_seconds: float = 0.0

    def lookahead_samples(self, sample_rate: int) -> int:
        """Samples after the end of a frame's hop that the tracker reads: round(lookahead_seconds * sample_rate)."""
        if not self.streaming:
            raise ParameterError(
                f"F0 tracker '{self.name}' is offline (it reads the whole signal), so it has no bounded "
                f"lookahead. For live use pick a streaming tracker: "
                f"{', '.join(n for n in f0_tracker_names() if _REGISTRY[n].streaming)}.")
        return int(round(self.lookahead_seconds * int(sample_rate)))

    @abstractmethod
    def track(self, audio: np.ndarray, sample_rate: int, hop: int, n_frames: int,
              f0_min: float = 50.0, f0_max: float = 1100.0) -> np.ndarray:
        """F0 of ``audio`` (float (N,), N samples at ``sample_rate``) on the frame grid.

        Returns float32 (n_frames,): F0 in Hz of frame j (around sample (j + 1) * hop),
        0.0 where unvoiced. Audio shorter than the grid needs is zero-padded, longer is ignored.
        """

    def stream(self, sample_rate: int, hop: int, f0_min: float = 50.0, f0_max: float = 1100.0) -> F0Stream:
        """A fresh :class:`F0Stream` for live use (streaming trackers only)."""
        raise ParameterError(
            f"F0 tracker '{self.name}' is offline and cannot stream. For live use pick one of: "
            f"{', '.join(n for n in f0_tracker_names() if _REGISTRY[n].streaming)}.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, streaming={self.streaming})"


_REGISTRY: dict[str, type[F0Tracker]] = {}


def register_f0_tracker(cls: type[F0Tracker]) -> type[F0Tracker]:
    """Register an :class:`F0Tracker` subclass under ``cls.name`` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, F0Tracker)):
        raise ParameterError(f"register_f0_tracker needs an F0Tracker subclass; received {cls!r}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name or name != name.strip().lower():
        raise ParameterError(
            f"F0 tracker class {cls.__name__} needs a lower-case, non-empty `name`; received {name!r}")
    if not isinstance(getattr(cls, "streaming", None), bool):
        raise ParameterError(f"F0 tracker class {cls.__name__} must set `streaming` to True or False")
    old = _REGISTRY.get(name)
    if old is not None and old.__qualname__ != cls.__qualname__:
        raise ParameterError(
            f"F0 tracker name '{name}' is already taken by {old.__module__}.{old.__qualname__}; "
            f"give {cls.__module__}.{cls.__qualname__} another name.")
    _REGISTRY[name] = cls
    return cls


def f0_tracker_names() -> tuple[str, ...]:
    """Names of the registered F0 trackers, sorted."""
    return tuple(sorted(_REGISTRY))


def get_f0_tracker(name: str, **options: Any) -> F0Tracker:
    """Build the tracker registered as ``name`` (case-insensitive); ``options`` go to its constructor."""
    key = name.strip().lower() if isinstance(name, str) else name
    cls = _REGISTRY.get(key) if isinstance(key, str) else None
    if cls is None:
        raise ParameterError(
            f"unknown F0 tracker {name!r}; registered trackers: {', '.join(f0_tracker_names()) or '(none)'}. "
            f"Use one of those names for f0_method.")
    try:
        return cls(**options)
    except TypeError as exc:
        raise ParameterError(f"F0 tracker '{key}' does not accept options {sorted(options)}: {exc}") from None
