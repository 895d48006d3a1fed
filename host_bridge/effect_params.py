"""Parameter views and the saved state of :class:`host_bridge.effect.VoiceConversion`.

Everything here is generated from :data:`svc_dsp.engine.parameters.PARAMETERS`; no parameter
is declared in this module.
"""
from __future__ import annotations

import inspect
import json
from typing import Any, Callable, Mapping

from svc_dsp.engine.parameters import PARAMETERS, Parameter
from svc_dsp.errors import PresetError

STATE_FORMAT = "svc-host/voice-conversion"
STATE_VERSION = 1
_PY_TYPES = {"float": float, "bool": bool, "choice": str, "str": str, "mix": dict}


class EffectParameter:
    """One parameter of one effect instance, like pedalboard's ``AudioProcessorParameter``.

    ``value`` reads/sets the effect's value (validated; out of range -> ParameterError);
    ``raw_value`` is the same in normalised 0..1 form (floats, bools and choices).
    """

    def __init__(self, spec: Parameter, get: Callable[[], Any], set_: Callable[[Any], None]) -> None:
        self.spec, self._get, self._set = spec, get, set_

    name = property(lambda self: self.spec.name)
    kind = property(lambda self: self.spec.kind, doc="'float', 'bool', 'choice', 'str' or 'mix'")
    type = property(lambda self: _PY_TYPES[self.spec.kind], doc="the Python type of a value")
    default = property(lambda self: self.spec.default)
    unit = property(lambda self: self.spec.unit)
    doc = property(lambda self: self.spec.doc)
    choices = property(lambda self: self.spec.choices)
    automatable = property(lambda self: self.spec.kind in ("float", "bool", "choice"),
                           doc="True when the parameter has a normalised 0..1 form (MIDI CC, host automation)")

    @property
    def range(self) -> tuple[float, float] | None:
        """(minimum, maximum) for floats, (0, 1) for bools, None otherwise."""
        if self.spec.kind == "float":
            return (self.spec.minimum, self.spec.maximum)
        return (0.0, 1.0) if self.spec.kind == "bool" else None

    @property
    def value(self) -> Any:
        return self._get()

    @value.setter
    def value(self, v: Any) -> None:
        self._set(v)

    @property
    def raw_value(self) -> float:
        return self.spec.normalise(self._get())

    @raw_value.setter
    def raw_value(self, x: float) -> None:
        self._set(self.spec.denormalise(x))

    @property
    def text(self) -> str:
        """The current value as text, e.g. '+2.00 st'."""
        return self.spec.to_text(self._get())

    def to_text(self, value: Any) -> str:
        return self.spec.to_text(value)

    def normalise(self, value: Any) -> float:
        return self.spec.normalise(value)

    def denormalise(self, x: float) -> Any:
        return self.spec.denormalise(x)

    def __repr__(self) -> str:
        rng = f" range={self.range}" if self.range else (f" choices={self.choices}" if self.choices else "")
        return f"<EffectParameter {self.name}={self.text!s}{rng} unit={self.unit!r} default={self.default!r}>"


def init_signature(extra_before: list[inspect.Parameter], extra_after: list[inspect.Parameter]) -> inspect.Signature:
    """``__init__`` signature with one keyword per table parameter (for help() and IDEs)."""
    kw = inspect.Parameter.KEYWORD_ONLY
    table = [inspect.Parameter(n, kw, default=p.default, annotation=_PY_TYPES[p.kind] | None if p.default is None
                               else _PY_TYPES[p.kind]) for n, p in PARAMETERS.items()]
    return inspect.Signature(extra_before + table + extra_after)


def encode_state(model_ref: str, values: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces): equal states give equal bytes."""
    doc = {"format": STATE_FORMAT, "version": STATE_VERSION, "model": model_ref,
           "parameters": {k: values[k] for k in PARAMETERS}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_state(data: bytes | str) -> tuple[str, dict[str, Any]]:
    """-> (model reference, parameter values). Raises PresetError naming what is wrong."""
    try:
        doc = json.loads(data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PresetError(f"raw_state is not svc-host effect state ({e}); pass bytes taken from "
                          f"VoiceConversion.raw_state") from None
    if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
        raise PresetError(f"raw_state has format {doc.get('format') if isinstance(doc, dict) else doc!r}; "
                          f"expected {STATE_FORMAT!r}")
    if doc.get("version") != STATE_VERSION:
        raise PresetError(f"raw_state version {doc.get('version')!r}; this svc-host reads version {STATE_VERSION}")
    params = doc.get("parameters")
    if not isinstance(params, dict):
        raise PresetError("raw_state has no 'parameters' table")
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise PresetError(f"raw_state names unknown parameters {unknown}; known: {', '.join(PARAMETERS)}")
    return str(doc.get("model", "")), params
