"""Plan a whole render batch before anything is written.

:func:`plan_batch` maps every input file to its output path and refuses the batch when a render
would lose audio: two inputs that land on one output, an output that is one of the inputs (also
an input that lies inside the output folder), or a report file that is an input or an output.
``svc-host render``, ``--dry-run`` and the cluster client use this one planner.

Paths are compared by their resolved real paths (symlinks followed) and, for files that exist,
by device and inode (hard links), so spelling the same file two ways does not hide a clash.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from svc_dsp.errors import RenderError

AUDIO_EXTENSIONS = frozenset({".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3",
                              ".w64", ".caf", ".rf64", ".au", ".snd", ".opus"})

__all__ = ["AUDIO_EXTENSIONS", "BatchPlan", "audio_files", "plan_batch"]


def _real(p: Path) -> str:
    return os.path.normcase(os.path.realpath(p))


def _inode(p: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(p)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def audio_files(folder: Path, skip: Sequence[str] = ()) -> list[Path]:
    """Audio files under ``folder`` (recursive, sorted; hidden files left out). Subfolders whose
    real path is in ``skip`` (e.g. the output folder inside an input folder) are not walked."""
    skip_set = set(skip)
    out: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _real(Path(root) / d) not in skip_set)
        for name in files:
            f = Path(root) / name
            if not name.startswith(".") and f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file():
                out.append(f)
    return sorted(out)


@dataclass
class BatchPlan:
    """The outcome of :func:`plan_batch`.

    ``pairs``: ``(input file, output file)`` in render order, each input once.
    ``refusals``: one line per clash that would lose audio (empty = safe to render); each names
    the inputs (or input and report file) involved, what would happen and the fix.
    ``missing``: inputs given on the command line that do not exist (one line each).
    ``outdir``: the output folder as given.
    """

    pairs: list[tuple[Path, Path]]
    outdir: Path
    refusals: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing is refused."""
        return not self.refusals

    @property
    def output_dirs(self) -> list[Path]:
        """The folders outputs go to (sorted, each once)."""
        return sorted({d for _, d in self.pairs for d in [d.parent]})

    def check(self) -> None:
        """Raise :class:`RenderError` with one line (the first refusal, and how many more)."""
        if self.refusals:
            more = len(self.refusals) - 1
            tail = f" ({more} more clash{'es' if more > 1 else ''} in this batch)" if more else ""
            raise RenderError(self.refusals[0] + tail)


def plan_batch(inputs: Iterable[str | os.PathLike[str]], outdir: str | os.PathLike[str], *,
               report_files: Sequence[str | os.PathLike[str]] = ()) -> BatchPlan:
    """Plan a render batch; nothing is written or created.

    ``inputs``: audio files and folders. A file ``x/a.wav`` goes to ``outdir/a.wav``; a folder
    ``x/take`` is walked (hidden files and the output folder itself left out) and its tree kept
    under ``outdir/take/``. The same file given twice (by any spelling) is rendered once.
    ``report_files``: files the run writes besides audio (``--json``); each must be neither an
    input nor an output, and must not have an audio file extension.

    Returns a :class:`BatchPlan`; call ``plan.check()`` to raise on refusals. Refused:
    two inputs mapping to one output; an output that is an input (any input of the batch, e.g.
    ``render take mix/take -o mix``); a report file that is an input, an output or named like audio.
    """
    outdir = Path(outdir)
    out_real = _real(outdir)
    pairs: list[tuple[Path, Path]] = []
    missing: list[str] = []
    seen_inputs: dict[str, Path] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files = [(f, outdir / p.name / f.relative_to(p)) for f in audio_files(p, skip=[out_real])]
        elif p.exists() or p.is_symlink():
            files = [(p, outdir / p.name)]
        else:
            missing.append(f"input '{p}': no such file or folder")
            files = [(p, outdir / p.name)]
        for src, dst in files:
            key = _real(src)
            if key in seen_inputs:
                continue
            seen_inputs[key] = src
            pairs.append((src, dst))

    refusals: list[str] = []
    input_inodes = {ino: src for src in seen_inputs.values() if (ino := _inode(src)) is not None}
    by_output: dict[str, Path] = {}
    for src, dst in pairs:
        key = _real(dst)
        other = by_output.get(key)
        if other is not None:
            refusals.append(f"inputs '{other}' and '{src}' would both be written to '{dst}'; render them "
                            f"to separate output folders (-o) or rename one")
            continue
        by_output[key] = src
        hit = seen_inputs.get(key)
        ino = _inode(dst)
        if hit is None and ino is not None:
            hit = input_inodes.get(ino)
        if hit is not None:
            refusals.append(f"output '{dst}' for input '{src}' is the input file '{hit}'; choose an output "
                            f"folder (-o) that holds none of the inputs")

    for rf in report_files:
        r = Path(rf)
        key, ino = _real(r), _inode(r)
        hit = seen_inputs.get(key) or (input_inodes.get(ino) if ino is not None else None)
        if hit is not None:
            refusals.append(f"report file '{r}' is the input '{hit}'; give the report its own name, "
                            f"e.g. --json report.json")
        elif key in by_output:
            refusals.append(f"report file '{r}' is the output of input '{by_output[key]}'; give the report "
                            f"its own name, e.g. --json report.json")
        elif r.suffix.lower() in AUDIO_EXTENSIONS:
            refusals.append(f"report file '{r}' is named like audio ({r.suffix}); give the report its own "
                            f"name, e.g. --json report.json")
    return BatchPlan(pairs=pairs, outdir=outdir, refusals=refusals, missing=missing)
