"""The voice-model interface the engine drives, and the family registry."""
from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from svc_dsp.errors import ParameterError, UnknownSpeakerError


class VoiceModel(ABC):
    """A loaded voice model.

    regime: "stateful" (causal; runs block by block from its own state, streaming equals
    offline) or "windowed" (non-causal; re-infers a bounded window, see engine.windowed).
    All audio is float32 mono at :attr:`sample_rate`; features are on the frame grid of
    :attr:`hop_size` samples (frame j describes the signal around sample (j+1)*hop).
    """

    family: ClassVar[str]
    regime: ClassVar[str]
    config: dict[str, Any]
    folder: Path | None

    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])

    @property
    def hop_size(self) -> int:
        return int(self.config["hop_size"])

    @property
    def speakers(self) -> list[str]:
        return list(self.config.get("speakers", ["default"]))

    @property
    def f0_range(self) -> tuple[float, float]:
        lo, hi = self.config.get("f0_range", [50.0, 1100.0])
        return float(lo), float(hi)

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.folder.name if self.folder else "unnamed"))

    def speaker_weights(self, speaker: str | None = None,
                        speaker_mix: Mapping[str, float] | None = None) -> np.ndarray:
        """float32 (S,) weights summing to 1 from a speaker name or a name -> weight mix."""
        names = self.speakers
        w = np.zeros(len(names), dtype=np.float32)
        if speaker_mix:
            for k, v in speaker_mix.items():
                if k not in names:
                    raise UnknownSpeakerError(
                        f"speaker_mix names '{k}', which model '{self.name}' does not have; "
                        f"its speakers: {', '.join(names)}")
                w[names.index(k)] = float(v)
            if w.sum() <= 0:
                raise ParameterError("speaker_mix weights sum to 0; give at least one positive weight")
            return w / w.sum()
        if speaker is None:
            w[0] = 1.0
            return w
        if speaker not in names:
            raise UnknownSpeakerError(
                f"speaker '{speaker}' is not in model '{self.name}'; its speakers: {', '.join(names)}. "
                f"Pass one of these with --speaker.")
        w[names.index(speaker)] = 1.0
        return w

    @abstractmethod
    def latency_samples(self) -> int:
        """Streaming delay at the model's sample rate, derived from the model's layers."""


class StatefulModel(VoiceModel):
    """A causal model that runs hop by hop from explicit state (regime "stateful").

    The engine drives it only through this interface: :attr:`delay_hops`, :meth:`init_state`
    and :meth:`process_hops`.
    """

    regime: ClassVar[str] = "stateful"

    @property
    @abstractmethod
    def delay_hops(self) -> int:
        """Lookahead in hops: output frame o is computed in the step that consumes input hop o + delay_hops."""

    @abstractmethod
    def init_state(self) -> list[Any]:
        """A fresh state (tensors or arrays, opaque to the engine)."""

    @abstractmethod
    def process_hops(self, x: np.ndarray, f0: np.ndarray, spk: np.ndarray, state: list[Any],
                     index_ratio: float = 0.0) -> tuple[np.ndarray, list[Any]]:
        """One step of k hops. x: float32 (k*hop,) input at :attr:`sample_rate`; f0: float32 (k,) Hz for
        the step's output frames (0 = unvoiced, already transposed); spk: float32 (S,) or (S, k)
        speaker weights; index_ratio: feature retrieval 0..1 (voices without an index ignore it).
        Returns (float32 (k*hop,) output samples of frames m - delay_hops .., the new state)."""


class WindowedModel(VoiceModel):
    """A non-causal model that converts a bounded window at a time (regime "windowed").

    The engine re-infers windows (streaming: :mod:`svc_dsp.engine.windowed`; offline:
    :mod:`svc_dsp.engine.windowed_offline`) and calls only :meth:`convert_window`.
    """

    regime: ClassVar[str] = "windowed"

    def latency_samples(self) -> int:
        """Windowed models add no delay of their own: the window geometry sets the latency."""
        return 0

    def window_settings(self) -> dict[str, float] | None:
        """The streaming window geometry this voice suggests, in seconds (keys of the engine's
        ``WindowSettings``: step, context, crossfade, search, lookahead), or None for the engine's defaults.
        The engine uses it unless the caller passes its own settings."""
        return None

    @abstractmethod
    def convert_window(self, audio: np.ndarray, f0: np.ndarray, spk: np.ndarray, *, uv: np.ndarray | None = None,
                       noise_scale: float = 0.4, seed: int = 52468, cluster_ratio: float | None = None,
                       index_ratio: float = 0.0) -> np.ndarray:
        """audio: float32 (N,) at :attr:`sample_rate`; f0: float32 (ceil(N/hop),) Hz on the engine's frame
        grid (0 = unvoiced, already transposed); spk: float32 (S,) or (S, ceil(N/hop)) weights; uv: 1 =
        voiced per frame (None: from f0); noise_scale, seed: the model's noise draw; cluster_ratio,
        index_ratio: content-unit retrieval 0..1 (models without centres/index ignore them).
        Returns float32 (N,), time-aligned with ``audio``."""


FamilyLoader = Callable[[Path, dict[str, Any]], VoiceModel]
_FAMILIES: dict[str, FamilyLoader] = {}


def register_family(name: str, loader: FamilyLoader) -> None:
    _FAMILIES[name] = loader


def family_names() -> tuple[str, ...]:
    _import_builtin()
    return tuple(sorted(_FAMILIES))


def family_loader(name: str) -> FamilyLoader | None:
    _import_builtin()
    return _FAMILIES.get(name)


def _import_builtin() -> None:
    import importlib
    import importlib.util

    for mod in ("svc_dsp.models.hpn", "svc_dsp.models.hpnw", "svc_dsp.models.sovits"):
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)
