"""The one parameter table.

Every parameter is declared once here with its type, range, default and unit.
The Python effect, presets, CLI flags, OSC addresses and MIDI mappings are all
generated from :data:`PARAMETERS`; nothing else declares a parameter.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from svc_dsp.errors import ParameterError


@dataclass(frozen=True)
class Parameter:
    """One controllable parameter.

    kind: "float", "bool", "choice", "str" (free name, e.g. a speaker) or
    "mix" (mapping name -> non-negative weight).
    """

    name: str
    kind: str
    default: Any
    unit: str = ""
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    doc: str = ""
    smoothed: bool = False
    aliases: tuple[str, ...] = field(default_factory=tuple)

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise ParameterError."""
        if self.kind == "float":
            try:
                v = float(value)
            except (TypeError, ValueError):
                raise ParameterError(
                    f"parameter '{self.name}' needs a number in [{self.minimum}, {self.maximum}] {self.unit}; "
                    f"received {value!r}") from None
            if not math.isfinite(v) or not (self.minimum <= v <= self.maximum):
                raise ParameterError(
                    f"parameter '{self.name}' = {value!r} is out of range; allowed [{self.minimum}, "
                    f"{self.maximum}] {self.unit}. Pick a value inside the range.")
            return v
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, (int, float)) and value in (0, 1):
                return bool(value)
            if isinstance(value, str) and value.lower() in ("true", "false", "on", "off", "1", "0", "yes", "no"):
                return value.lower() in ("true", "on", "1", "yes")
            raise ParameterError(f"parameter '{self.name}' needs true/false (or 1/0, on/off); received {value!r}")
        if self.kind == "choice":
            if value not in self.choices:
                raise ParameterError(
                    f"parameter '{self.name}' = {value!r} is not allowed; choose one of {', '.join(self.choices)}")
            return value
        if self.kind == "str":
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                raise ParameterError(f"parameter '{self.name}' needs a non-empty name; received {value!r}")
            return value
        if self.kind == "mix":
            if value is None:
                return None
            if not isinstance(value, Mapping) or not value:
                raise ParameterError(
                    f"parameter '{self.name}' needs a mapping of speaker name -> weight, e.g. "
                    f"{{'alto': 0.7, 'tenor': 0.3}}; received {value!r}")
            out: dict[str, float] = {}
            for k, w in value.items():
                try:
                    wf = float(w)
                except (TypeError, ValueError):
                    wf = float("nan")
                if not isinstance(k, str) or not math.isfinite(wf) or wf < 0:
                    raise ParameterError(
                        f"parameter '{self.name}': weight for {k!r} is {w!r}; weights must be finite and >= 0")
                out[k] = wf
            if sum(out.values()) <= 0:
                raise ParameterError(f"parameter '{self.name}': weights {out} sum to 0; give at least one positive weight")
            return out
        raise AssertionError(self.kind)

    # -- normalised (0..1) form for MIDI/OSC/host automation ---------------
    def normalise(self, value: Any) -> float:
        """Map a raw value to 0..1 (floats and bools only)."""
        if self.kind == "bool":
            return 1.0 if value else 0.0
        if self.kind == "float":
            return (float(value) - self.minimum) / (self.maximum - self.minimum)
        if self.kind == "choice":
            return self.choices.index(value) / max(1, len(self.choices) - 1)
        raise ParameterError(f"parameter '{self.name}' ({self.kind}) has no normalised form")

    def denormalise(self, x: float) -> Any:
        """Map 0..1 back to a raw value (clamped into range)."""
        x = min(1.0, max(0.0, float(x)))
        if self.kind == "bool":
            return x >= 0.5
        if self.kind == "float":
            return self.minimum + x * (self.maximum - self.minimum)
        if self.kind == "choice":
            return self.choices[int(round(x * (len(self.choices) - 1)))]
        raise ParameterError(f"parameter '{self.name}' ({self.kind}) has no normalised form")

    def to_text(self, value: Any) -> str:
        """Human-readable value, e.g. '+2.00 st', '-6.0 dB', 'on'."""
        if self.kind == "float":
            if self.unit == "st":
                return f"{value:+.2f} st"
            if self.unit == "dB":
                return f"{value:.1f} dB"
            if self.unit == "%":
                return f"{value * 100:.0f} %"
            return f"{value:.3f}"
        if self.kind == "bool":
            return "on" if value else "off"
        if self.kind == "mix":
            return "none" if not value else ", ".join(f"{k} {w:.2f}" for k, w in value.items())
        return "default" if value is None else str(value)


F0_METHODS: tuple[str, ...] = ("yin", "harvest", "dio", "crepe", "crepe-tiny", "fcpe", "pesto",
                                 "crepe-tiny-live", "fcpe-live")

PARAMETERS: dict[str, Parameter] = {p.name: p for p in (
    Parameter("transpose", "float", 0.0, "st", -36.0, 36.0,
              doc="Pitch shift of the converted voice in semitones (so-vits-svc: -t).", smoothed=True),
    Parameter("speaker", "str", None, doc="Speaker name of the voice model (default: the model's first)."),
    Parameter("speaker_mix", "mix", None,
              doc="Blend of speakers, name -> weight (normalised to sum 1); overrides 'speaker'."),
    Parameter("f0_method", "choice", "yin", choices=F0_METHODS,
              doc="F0 tracker: 'yin' (fast, streaming), 'harvest' (robust low range, offline), 'dio' (fast, offline), "
                  "'crepe' / 'crepe-tiny' / 'fcpe' (neural, offline; fcpe is the most accurate on singing), "
                  "'pesto' (neural, streaming, 10 ms lookahead), 'crepe-tiny-live' (neural, streaming, 20 ms "
                  "lookahead), 'fcpe-live' (neural, streaming, 25 ms lookahead; the most accurate live); "
                  "neural weights: `svc-host weights install`."),
    Parameter("loudness_match", "float", 1.0, "%", 0.0, 1.0,
              doc="0 = the model's own loudness envelope, 1 = follow the input's envelope.", smoothed=True),
    Parameter("gate_db", "float", -60.0, "dB", -120.0, 0.0,
              doc="Input level below which the output is silent (with hold and release)."),
    Parameter("mix", "float", 1.0, "%", 0.0, 1.0, doc="Dry/wet: 0 = input only, 1 = converted only.",
              smoothed=True),
    Parameter("output_gain_db", "float", 0.0, "dB", -60.0, 24.0, doc="Gain after conversion and mix.",
              smoothed=True),
    Parameter("bypass", "bool", False, doc="Pass the input through (still delayed by the latency)."),
    Parameter("cluster_ratio", "float", 0.0, "%", 0.0, 1.0,
              doc="so-vits voices with k-means centres: how far each content frame moves to its speaker's "
                  "nearest centre (so-vits-svc: -cr); 0 = off. Voices without centres ignore it."),
    Parameter("index_ratio", "float", 0.0, "%", 0.0, 1.0,
              doc="Feature retrieval (RVC's index): share of each content frame replaced by the mean of its "
                  "nearest frames from the target's own training data; 0 = off. Needs a voice with an index "
                  "(`svc-host train index`); others ignore it."),
)}

#: so-vits-svc words users know -> our names.
ALIASES: dict[str, str] = {"t": "transpose", "tran": "transpose", "s": "speaker", "spk": "speaker",
                           "f0p": "f0_method", "f0_predictor": "f0_method", "cr": "cluster_ratio",
                           "cluster_infer_ratio": "cluster_ratio"}


def parameter(name: str) -> Parameter:
    """Look a parameter up by name (or a so-vits-svc alias)."""
    key = ALIASES.get(name, name)
    try:
        return PARAMETERS[key]
    except KeyError:
        raise ParameterError(
            f"unknown parameter '{name}'; known parameters: {', '.join(PARAMETERS)}") from None


def defaults() -> dict[str, Any]:
    """A fresh dict of every parameter's default value."""
    return {n: (dict(p.default) if isinstance(p.default, dict) else p.default) for n, p in PARAMETERS.items()}


def validate_all(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a mapping of parameter values; returns defaults updated with them."""
    out = defaults()
    for k, v in values.items():
        p = parameter(k)
        out[p.name] = p.validate(v)
    return out
