"""Sample-accurate parameter automation for renders.

A lane is ``{parameter: [(sample, value), ...]}`` with samples counted at the file's rate from
its first sample. Values are **steps**: from ``sample`` on, the parameter's target is
``value`` (MIDI CC and most host automation are steps too); the engine's own smoothing (20 ms
for mix/gain/bypass, 30 ms for frame-rate parameters) turns every step into a click-free
glide, so a ramp is written as a few points along it. Before a lane's first point the
parameter keeps the value the effect was built with; points at sample 0 are set before the
stream starts (no glide). Names are the parameter table's; ``f0_method`` cannot be automated
(it restarts the stream). A lane acts on every :class:`VoiceConversion` in the chain.

Timing in the rendered (latency-compensated) output: the renderer splits its chunks at every
point, so a parameter read after the engine's delay line (mix, output_gain_db, bypass) starts
to move at exactly ``sample``; parameters the model reads per frame (transpose, speaker,
loudness_match, gate_db) apply from the frame that holds ``sample``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from svc_dsp.engine.parameters import PARAMETERS, parameter
from svc_dsp.errors import ParameterError, PresetError

#: Parameters StreamingConverter.process reads after its delay line (per output sample); the
#: others are read by the model stage when input frames arrive. test_automation checks it.
OUTPUT_SIDE = frozenset({"mix", "output_gain_db", "bypass"})
Lanes = dict[str, list[tuple[int, Any]]]


def validate_lanes(lanes: Mapping[str, Iterable[Sequence[Any]]]) -> Lanes:
    """Check names, samples (whole numbers >= 0) and values; points sorted by sample (a later
    point at the same sample wins)."""
    if not isinstance(lanes, Mapping):
        raise ParameterError(f"automation must map parameter names to [(sample, value), ...]; received "
                             f"{type(lanes).__name__}")
    out: Lanes = {}
    for name, points in lanes.items():
        p = parameter(name)
        if p.name == "f0_method":
            raise ParameterError("f0_method cannot be automated (changing the F0 tracker restarts the stream); "
                                 "set it once for the render")
        pts: list[tuple[int, Any]] = []
        for i, pt in enumerate(points):
            try:
                s, v = pt
                s_int = int(s)
                ok = s_int == s and s_int >= 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ParameterError(f"automation lane '{name}' point {i}: {pt!r}; each point is (sample, value) "
                                     f"with a whole sample number >= 0")
            pts.append((s_int, p.validate(v)))
        out[p.name] = sorted(pts, key=lambda t: t[0])
    return out


def automation_from_midi(path: str | os.PathLike, cc_map: Mapping[int, str], sample_rate: int,
                         channel: int | None = None) -> Lanes:
    """CC lanes of a MIDI file -> lanes at ``sample_rate``: CC value 0..127 is denormalised to
    the parameter's range (value/127). mido applies the file's tempo changes while reading.
    ``channel`` (0..15) keeps one MIDI channel; None takes all."""
    import mido

    mapping: dict[int, str] = {}
    for cc, name in cc_map.items():
        p = parameter(name)
        if not 0 <= int(cc) <= 127:
            raise ParameterError(f"CC number {cc}; allowed 0..127")
        if p.kind not in ("float", "bool", "choice") or p.name == "f0_method":
            allowed = ", ".join(n for n, q in PARAMETERS.items() if q.kind in ("float", "bool"))
            raise ParameterError(f"CC {cc} -> '{name}': only numeric, on/off and choice parameters map to a CC "
                                 f"(automatable: {allowed})")
        mapping[int(cc)] = p.name
    try:
        mid = mido.MidiFile(os.fspath(path))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as e:
        raise PresetError(f"'{path}': not a readable MIDI file ({e}); export a standard MIDI file (.mid)") from None
    lanes: Lanes = {name: [] for name in mapping.values()}
    t = 0.0
    for msg in mid:  # merged tracks; msg.time is the delta in seconds, tempo already applied
        t += msg.time
        if msg.type == "control_change" and msg.control in mapping and (channel is None or msg.channel == channel):
            name = mapping[msg.control]
            lanes[name].append((int(round(t * sample_rate)), PARAMETERS[name].denormalise(msg.value / 127.0)))
    return validate_lanes({k: v for k, v in lanes.items() if v})


def load_automation_json(path: str | os.PathLike, sample_rate: int) -> Lanes:
    """JSON: ``{"transpose": [[0, 0], [44100, 2]]}`` (samples) or
    ``{"time": "seconds"|"samples", "lanes": {...}}``."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PresetError(f"'{path}': not a readable automation JSON file ({e})") from None
    unit = "samples"
    if isinstance(doc, dict) and "lanes" in doc:
        unit = doc.get("time", "samples")
        if unit not in ("samples", "seconds"):
            raise PresetError(f"'{path}': time {unit!r}; allowed 'samples' or 'seconds'")
        doc = doc["lanes"]
    if not isinstance(doc, dict):
        raise PresetError(f"'{path}': expected an object of lanes {{\"transpose\": [[sample, value], ...]}}")
    if unit == "seconds":
        doc = {k: [(int(round(float(t) * sample_rate)), v) for t, v in pts] for k, pts in doc.items()}
    try:
        return validate_lanes(doc)
    except ParameterError as e:
        raise PresetError(f"'{path}': {e}") from None


@dataclass(frozen=True)
class AutomationFile:
    """An automation source read per file at that file's rate (picklable for render jobs)."""

    path: str
    cc_map: Mapping[int, str] = field(default_factory=dict)

    def lanes(self, sample_rate: int) -> Lanes:
        suffix = Path(self.path).suffix.lower()
        if suffix in (".mid", ".midi", ".smf"):
            if not self.cc_map:
                raise PresetError(f"'{self.path}': a MIDI file needs a CC mapping, e.g. --cc 1=transpose")
            return automation_from_midi(self.path, self.cc_map, sample_rate)
        if suffix == ".json":
            return load_automation_json(self.path, sample_rate)
        raise PresetError(f"automation file '{self.path}': allowed .json or .mid")


def resolve_lanes(automation: Any, sample_rate: int) -> Lanes:
    """None, a lanes mapping, an AutomationFile or a path -> validated lanes."""
    if automation is None:
        return {}
    if isinstance(automation, AutomationFile):
        return automation.lanes(sample_rate)
    if isinstance(automation, (str, os.PathLike)):
        return AutomationFile(os.fspath(automation)).lanes(sample_rate)
    return validate_lanes(automation)


class Automator:
    """Points scheduled in stream time (samples fed to the chain) for each effect.

    An effect after upstream latency ``Lu`` sees aligned sample ``s`` at stream time ``s + Lu``;
    its output-side parameters act ``latency`` samples later still.
    """

    def __init__(self, lanes: Lanes, chain: Any, sample_rate: int) -> None:
        self.initial: list[tuple[Any, str, Any]] = []
        events: list[tuple[int, int, Any, str, Any]] = []
        effects = []
        upstream = 0
        stage_lat = chain.stage_latencies()
        for (kind, item), lat in zip(chain.runs(), stage_lat):
            if kind == "ours" and not hasattr(item, "_runs"):
                effects.append((item, upstream, lat))
            upstream += lat
        if lanes and not effects:
            raise ParameterError("automation needs a VoiceConversion in the chain; this chain has none")
        seq = 0
        for name, pts in lanes.items():
            for eff, up, lat in effects:
                shift = up + (lat if name in OUTPUT_SIDE else 0)
                for s, v in pts:
                    if s == 0:
                        self.initial.append((eff, name, v))
                    else:
                        events.append((s + shift, seq, eff, name, v))
                    seq += 1
        self.events = sorted(events, key=lambda e: (e[0], e[1]))
        self._i = 0

    def apply_initial(self) -> None:
        for eff, name, v in self.initial:
            eff.set(name, v)

    def apply_until(self, pos: int) -> None:
        """Apply every point scheduled at stream time <= pos."""
        while self._i < len(self.events) and self.events[self._i][0] <= pos:
            _, _, eff, name, v = self.events[self._i]
            eff.set(name, v)
            self._i += 1

    def next_after(self, pos: int) -> int | None:
        """Stream time of the next point after ``pos`` (where a chunk must be split)."""
        for e in self.events[self._i:]:
            if e[0] > pos:
                return e[0]
        return None
