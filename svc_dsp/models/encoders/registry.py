"""Content encoders: audio -> speaker-independent content units, one vector per frame.

A small registry of named kinds. Each kind is loaded from a folder (``model.json``
with ``"family": "content-encoder"`` and a ``"kind"``) or built fresh for tests.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from svc_dsp.errors import ModelFormatError, ParameterError
from svc_dsp.models.folder import read_config, verify_manifest
from svc_dsp.audio.resample import resample


class ContentEncoder(ABC):
    """Base of all content encoders.

    dim: size of one unit vector. frame_seconds: time between unit frames.
    causal: True if frame j depends only on audio up to (j+1)*hop + lookahead
    (then it can run block by block inside a streaming model).
    """

    kind: ClassVar[str]
    dim: int
    frame_seconds: float
    causal: bool
    config: dict[str, Any]

    @abstractmethod
    def encode(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """audio: float32 (N,) mono at ``sample_rate`` -> units float32 (T, dim)."""

    def describe(self) -> str:
        name = self.config.get("name", "unnamed")
        return f"'{name}' (kind {self.kind}, {self.dim}-dim units)"


def mono_at(audio: np.ndarray, sample_rate: int, rate: int) -> np.ndarray:
    """The float32 mono (N,) input an encoder expects at ``rate`` (resampled if needed)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ParameterError(f"audio of shape {x.shape}; the encoder takes mono (N,)")
    if sample_rate != rate:
        x = resample(x, sample_rate, rate)
    return x


_LOADERS: dict[str, Callable[[Path, dict[str, Any]], ContentEncoder]] = {}


def register_content_encoder(kind: str, loader: Callable[[Path, dict[str, Any]], ContentEncoder]) -> None:
    """Register ``loader(folder, config) -> ContentEncoder`` for ``kind``."""
    _LOADERS[kind] = loader


def content_encoder_kinds() -> tuple[str, ...]:
    _import_builtin()
    return tuple(sorted(_LOADERS))


def load_content_encoder(folder: str | Path) -> ContentEncoder:
    """Load a content-encoder folder (manifest and tensor shapes are checked)."""
    _import_builtin()
    folder = Path(folder)
    cfg = read_config(folder)
    if cfg.get("family") != "content-encoder":
        raise ModelFormatError(f"'{folder}' holds a '{cfg.get('family')}' model, not a content encoder")
    verify_manifest(folder)
    kind = cfg.get("kind")
    if kind not in _LOADERS:
        raise ParameterError(f"'{folder}': content encoder kind {kind!r} is unknown; known kinds: "
                             f"{', '.join(sorted(_LOADERS))}")
    return _LOADERS[kind](folder, cfg)


def _import_builtin() -> None:
    import svc_dsp.models.encoders.causal_mel  # noqa: F401  (registers 'causal-mel')
    import svc_dsp.models.encoders.onnx  # noqa: F401  (registers 'onnx-encoder')
    import svc_dsp.models.encoders.hubert  # noqa: F401  (registers 'hubert')
    import svc_dsp.models.encoders.whisper  # noqa: F401  (registers 'whisper')
