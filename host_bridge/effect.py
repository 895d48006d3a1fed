"""``VoiceConversion``: the voice converter as a pedalboard-style effect.

pedalboard cannot host Python plugins, so this class copies the surface of
``pedalboard.Plugin`` (``process``, ``__call__``, ``reset``, ``is_effect``, ``is_instrument``)
and adds ``latency_samples``, ``tail_seconds``, ``parameters``, presets and ``raw_state``.
Use :class:`host_bridge.chain.Chain` to run it together with native pedalboard plugins.
"""
from __future__ import annotations

import inspect
import math
import os
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from host_bridge.effect_params import EffectParameter, decode_state, encode_state, init_signature
from host_bridge.layout import LayoutMemory
from host_bridge.resolve import resolve
from svc_dsp.audio.io import MAX_SAMPLE_RATE as MAX_RATE
from svc_dsp.audio.io import MIN_SAMPLE_RATE as MIN_RATE
from svc_dsp.engine.dynamics import Gate
from svc_dsp.engine.parameters import PARAMETERS, defaults
from svc_dsp.engine.voice_processor import VoiceProcessor
from svc_dsp.errors import AudioError, ParameterError, PresetError, UnsupportedAudioError
from svc_dsp.models.base import VoiceModel
from host_bridge.presets import save_preset
from host_bridge.presets import load_preset


def check_rate(sample_rate: Any) -> int:
    """``sample_rate`` as a whole number of Hz in the engine's range, else UnsupportedAudioError."""
    try:
        sr = float(sample_rate)
    except (TypeError, ValueError):
        sr = float("nan")
    if not (math.isfinite(sr) and sr == int(sr) and MIN_RATE <= sr <= MAX_RATE):
        raise UnsupportedAudioError(f"sample_rate {sample_rate!r}; allowed: a whole number of Hz in "
                                    f"{MIN_RATE}..{MAX_RATE}. Resample the audio first.")
    return int(sr)


_check_rate = check_rate  # the earlier private name


class VoiceConversion:
    """Singing-voice conversion with one voice model, as a pedalboard-style effect.

    ``VoiceConversion(model_or_preset, *, transpose=0.0, speaker=None, ..., backend="torch",
    max_block_size=8192, sample_rate=None)``. ``model_or_preset``: a VoiceModel, a model folder,
    a preset ``.toml`` file, a :class:`host_bridge.presets.Preset`, or a catalog name (a preset of
    that name wins over a model of that name). Every parameter of the table
    (``svc_dsp.engine.parameters``) is a keyword argument and an attribute; keywords override a
    preset's values. ``sample_rate`` only prepares the engine early (no allocation on the first
    call). Parameters are *refused*, never clamped: an out-of-range value raises
    ``ParameterError`` naming the range, and the previous value stays. Setting a parameter
    while audio runs sets a target that the engine approaches smoothly (no zipper noise);
    ``f0_method`` is the exception: changing it restarts the stream.

    A thin adapter: the values, the engine and the stream live in one
    :class:`svc_dsp.engine.voice_processor.VoiceProcessor` (:attr:`processor`); this class adds
    pedalboard's surface (array layouts, ``reset``), presets and state.
    """

    is_effect = True
    is_instrument = False

    def __init__(self, model_or_preset: Any, *, backend: str = "torch", max_block_size: int = 8192,
                 sample_rate: int | None = None, **params: Any) -> None:
        if backend not in ("torch", "onnx"):
            raise ParameterError(f"backend {backend!r}; allowed: 'torch', 'onnx'")
        if int(max_block_size) < 1:
            raise ParameterError(f"max_block_size {max_block_size!r}; allowed: a whole number >= 1")
        r = resolve(model_or_preset)
        self._model_ref = r.ref
        self.processor = VoiceProcessor(r.model, backend=backend, max_block_size=int(max_block_size),
                                        values={**r.parameters, **params})
        self._layout = LayoutMemory()
        if sample_rate is not None:
            self.processor.prepare(check_rate(sample_rate))

    @property
    def backend(self) -> str:
        return self.processor.backend

    @property
    def max_block_size(self) -> int:
        return self.processor.max_block_size

    # -- parameters -----------------------------------------------------------------
    def set(self, name: str, value: Any) -> None:
        """Validate and set one parameter (also ``effect.<name> = value``); UnknownSpeakerError
        lists the model's speakers. A change of ``f0_method`` starts a new stream."""
        self.processor.set(name, value)

    @property
    def _values(self) -> Mapping[str, Any]:
        return self.processor.targets()

    def get(self, name: str) -> Any:
        return self.processor.get(name)

    @property
    def parameters(self) -> Mapping[str, EffectParameter]:
        """name -> :class:`EffectParameter` (type, range, default, unit, text, normalise...)."""
        return MappingProxyType({n: EffectParameter(p, lambda n=n: self._values[n], lambda v, n=n: self.set(n, v))
                                 for n, p in PARAMETERS.items()})

    @property
    def model(self) -> VoiceModel:
        return self.processor.model

    @property
    def model_ref(self) -> str:
        """The catalog name presets and ``raw_state`` use for this effect's model."""
        return self._model_ref

    # -- latency --------------------------------------------------------------------
    @property
    def sample_rate(self) -> int | None:
        """The rate of the last ``process`` call (or the constructor's ``sample_rate``)."""
        return self.processor.sample_rate

    def latency_at(self, sample_rate: int) -> int:
        """Latency in samples at ``sample_rate``; it never depends on parameters or block size."""
        return self.processor.latency_at(check_rate(sample_rate))

    @property
    def latency_samples(self) -> int:
        """Output delay of ``process(..., reset=False)`` in samples at :attr:`sample_rate`."""
        if self.sample_rate is None:
            raise AudioError("latency_samples depends on the sample rate, and this effect has not processed "
                             "audio yet; call process() once, pass sample_rate= to the constructor, or use "
                             "latency_at(sample_rate)")
        return self.latency_at(self.sample_rate)

    @property
    def tail_seconds(self) -> float:
        """How long output goes on after the input falls silent: the latency plus the gate's
        hold and release (-60 dB)."""
        hop_s = self.model.hop_size / self.model.sample_rate
        gate = Gate(hop_s)
        release = math.log(1e-3) / math.log(gate.a_rel) if 0 < gate.a_rel < 1 else 0.0
        lat = self.latency_samples / self.sample_rate if self.sample_rate else 0.0
        return lat + (gate.hold + release + 1) * hop_s

    # -- processing -------------------------------------------------------------------
    def begin_new_stream(self) -> None:
        """The next ``reset=False`` call starts a new stream (a :class:`Chain` calls this when
        it rebuilds its stages); unlike :meth:`reset`, the layout memory is kept."""
        self.processor.begin_new_stream()

    def reset(self) -> None:
        """Clear all state (the next call starts a new stream) and forget the last array layout."""
        self.processor.reset()
        self._layout.clear()

    def process(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192,
                reset: bool = True) -> np.ndarray:
        """Run a 32-bit or 64-bit float buffer through the voice converter.

        ``input_array``: ``(samples,)``, ``(channels, samples)`` or ``(samples, channels)``; the
        smaller dimension is taken as channels (pedalboard's rule: the previous call's channel
        count breaks ties, a square array reuses the previous layout, see ``host_bridge.layout``).
        float64 is converted to float32; integer arrays raise ``TypeError``. Returns float32 in
        the caller's layout, always with exactly as many samples as were provided.

        ``reset=True`` (default): state is cleared first and the result is latency-compensated:
        the engine is flushed with ``latency_samples`` of silence and its first
        ``latency_samples`` are dropped, so ``effect(audio, sr)`` equals
        ``Converter(model, **params).convert(audio, sr)``.

        ``reset=False``: the call continues the stream of the previous ``reset=False`` call,
        like a plugin inside a DAW: the output has the input's length and is the converted
        signal delayed by exactly ``latency_samples`` (the first call starts with that much
        silence). Feed chunks of any size; the concatenated output equals one call. A new stream
        (state cleared) starts on the first ``reset=False`` call after construction,
        :meth:`reset`, a ``reset=True`` call, a change of ``f0_method``, a different
        ``sample_rate`` (the latency is then the new rate's) or a different channel count
        (pedalboard's native plugins also re-prepare, and lose their state, on both).
        Offline F0 trackers (``harvest``, ``dio``) need the whole signal: with them only
        ``reset=True`` works.

        ``buffer_size``: the largest block handed to the engine (speed only; the output does not
        depend on it).
        """
        x, layout = self._layout.to_channels_first(input_array)
        return LayoutMemory.restore(self.process_planar(x, sample_rate, buffer_size, reset), layout)

    def __call__(self, input_array: np.ndarray, sample_rate: float, buffer_size: int = 8192,
                 reset: bool = True) -> np.ndarray:
        """Alias for :meth:`process`."""
        return self.process(input_array, sample_rate, buffer_size, reset)

    def process_planar(self, x: np.ndarray, sample_rate: Any, buffer_size: int = 8192,
                       reset: bool = True) -> np.ndarray:
        """:meth:`process` for a (C, n) float32 array (no layout guess) -> (C, n) float32; what
        :class:`host_bridge.chain.Chain` and the renderer call."""
        sr = check_rate(sample_rate)
        if int(buffer_size) < 1:
            raise ParameterError(f"buffer_size {buffer_size!r}; allowed: a whole number >= 1")
        if reset:
            return self.processor.render(x, sr, int(buffer_size))
        return self.processor.stream(x, sr, int(buffer_size))

    # the renderer and Chain call these two by their old names too
    _process_cf = process_planar
    _begin_new_stream = begin_new_stream

    @property
    def streams(self) -> bool:
        """True when the current ``f0_method`` is a streaming tracker (``reset=False`` works);
        False for offline trackers (harvest, dio...), which need the whole signal."""
        return self.processor.streams

    # -- presets and state ------------------------------------------------------------
    def save_preset(self, path: str | os.PathLike, description: str = "") -> Path:
        """Write this effect's model reference and parameter values as a preset TOML file."""
        return save_preset(path, self._model_ref, {k: v for k, v in self._values.items() if v is not None},
                           description)

    def load_preset(self, name_or_path: str | os.PathLike) -> None:
        """Load a catalog preset (or a .toml file): its model if it names another one, and its
        values; parameters the preset does not set go back to their defaults."""
        preset = load_preset(name_or_path, allow_path=True)
        values = {**defaults(), **preset.parameters}
        if preset.model == self._model_ref:
            self.processor.update(values)
            return
        p = self.processor
        self.processor = VoiceProcessor(resolve(preset).model, backend=p.backend, max_block_size=p.max_block_size,
                                        values=values)
        self._model_ref = preset.model
        if p.sample_rate is not None:
            self.processor.prepare(p.sample_rate)

    @property
    def raw_state(self) -> bytes:
        """Versioned state (canonical JSON bytes: model reference + every parameter value).
        ``other.raw_state = effect.raw_state`` makes ``other`` render identically."""
        return encode_state(self._model_ref, self._values)

    @raw_state.setter
    def raw_state(self, data: bytes) -> None:
        model_ref, params = decode_state(data)
        if model_ref != self._model_ref:
            raise PresetError(f"raw_state was saved for model '{model_ref}'; this effect runs '{self._model_ref}'. "
                              f"Create VoiceConversion('{model_ref}') and set its raw_state instead")
        self.processor.update({**defaults(), **params})

    def __repr__(self) -> str:
        vals = " ".join(f"{n}={PARAMETERS[n].to_text(v)!r}" if PARAMETERS[n].kind == "float" else f"{n}={v!r}"
                        for n, v in self._values.items())
        lat = (f" latency={self.latency_samples} samples at {self.sample_rate} Hz" if self.sample_rate else "")
        return f"<host_bridge.effect.VoiceConversion model={self._model_ref!r} {vals}{lat} at {hex(id(self))}>"


def _param_property(name: str) -> property:
    spec = PARAMETERS[name]
    return property(lambda self: self._values[name], lambda self, v: self.set(name, v),
                    doc=f"{spec.doc} ({spec.kind}{', ' + spec.unit if spec.unit else ''}; default "
                        f"{spec.to_text(spec.default)})")


for _name in PARAMETERS:
    setattr(VoiceConversion, _name, _param_property(_name))
VoiceConversion.__init__.__signature__ = init_signature(  # type: ignore[attr-defined]
    [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
     inspect.Parameter("model_or_preset", inspect.Parameter.POSITIONAL_OR_KEYWORD)],
    [inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, default="torch"),
     inspect.Parameter("max_block_size", inspect.Parameter.KEYWORD_ONLY, default=8192),
     inspect.Parameter("sample_rate", inspect.Parameter.KEYWORD_ONLY, default=None)])
