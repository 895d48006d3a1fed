"""``svc-host render --dry-run``: check a planned batch file by file and say what would be written.

Nothing is created, written or removed. Each input is opened the way the render opens it
(header, sample rate, channels, truncation), and its output format is checked with libsndfile
(``soundfile.check_format``) for the output's extension and sample format.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_bridge.render_plan import BatchPlan
from svc_dsp.audio.io import format_from_path, read_info
from svc_dsp.errors import SvcError, UnknownSpeakerError
from svc_dsp.models.folder import read_config

__all__ = ["DryRow", "dry_run", "dry_run_table", "check_model"]


def check_model(model_ref: str, params: dict[str, Any]) -> None:
    """Read the model folder's model.json (no weights) and check the speaker names in ``params``
    against it; raises SvcError (one line) on a problem."""
    cfg = read_config(model_ref)
    names = [str(n) for n in cfg.get("speakers", [])]
    wanted = ([params["speaker"]] if params.get("speaker") else []) + list(params.get("speaker_mix") or {})
    for name in wanted:
        if names and name not in names:
            raise UnknownSpeakerError(f"speaker '{name}' is not in model '{model_ref}'; its speakers: "
                                      f"{', '.join(names)}. Pass one of these with --speaker.")


@dataclass(frozen=True)
class DryRow:
    """One planned file. ``action``: 'write', 'replace', 'skip' or 'fail'; ``note``: why, in full."""

    input: Path
    output: Path
    action: str
    note: str = ""


def _check_one(src: Path, dst: Path, existing: str, subtype: str | None, allow_truncated: bool) -> DryRow:
    import soundfile as sf

    try:
        info = read_info(src, allow_truncated=allow_truncated)
        fmt = format_from_path(dst) if dst.suffix else info.format
        sub = (subtype or info.subtype).upper()
        if not sf.check_format(fmt, sub):
            raise SvcError(f"sample format {sub} cannot be written as {fmt}; allowed: "
                           f"{', '.join(sorted(sf.available_subtypes(fmt)))} (--subtype)")
    except SvcError as e:
        return DryRow(src, dst, "fail", str(e).replace(f"file '{src}': ", ""))
    note = f"{info.duration_s:.1f} s, {info.sample_rate} Hz, {info.channels} ch, {fmt}/{sub}"
    if info.missing_frames:
        note += f"; truncated: {info.missing_frames / info.sample_rate:.3f} s missing, rendered without it"
    if os.path.lexists(dst):
        if existing == "skip":
            return DryRow(src, dst, "skip", "output exists (use --overwrite to replace it)")
        if existing == "error":
            return DryRow(src, dst, "fail", f"output '{dst}' exists; remove it or pass --overwrite")
        return DryRow(src, dst, "replace", note)
    return DryRow(src, dst, "write", note)


def dry_run(plan: BatchPlan, *, existing: str = "skip", subtype: str | None = None,
            allow_truncated: bool = False) -> list[DryRow]:
    """Check every planned pair; nothing is written. Refused plans should be checked before."""
    return [_check_one(s, d, existing, subtype, allow_truncated) for s, d in plan.pairs]


def dry_run_table(rows: list[DryRow], model_ref: str, params: dict[str, Any]) -> str:
    """The dry run's report: model and parameters, then one line per file: action, input -> output
    (each path once), and the note in full."""
    lines = [f"dry run: nothing written. model: {model_ref}",
             "parameters: " + (", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults")]
    for r in rows:
        lines.append(f"{r.action:8s} {r.input} -> {r.output}")
        if r.note:
            lines.append(f"         {r.note}")
    counts = {a: sum(r.action == a for r in rows) for a in ("write", "replace", "skip", "fail")}
    lines.append(f"would write {counts['write']}, replace {counts['replace']}, skip {counts['skip']}; "
                 f"{counts['fail']} would fail")
    return "\n".join(lines)
