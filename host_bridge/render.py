"""The one renderer: files and folders of stems -> converted files.

``svc-host render``, :func:`render_file` and server render jobs share this code path:
read, convert, write atomically (temp file + rename), report.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

AUDIO_EXTENSIONS = {".wav", ".wave", ".flac", ".aif", ".aiff", ".aifc", ".ogg", ".oga", ".mp3", ".w64",
                    ".caf", ".rf64", ".au", ".snd", ".opus"}
EXISTING_POLICIES = ("skip", "overwrite", "error")


@dataclass
class RenderResult:
    """Outcome of one file. status: 'ok', 'skipped' or 'failed'."""

    input: str
    output: str
    status: str
    message: str = ""
    seconds_audio: float = 0.0
    seconds_wall: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    clipped_samples: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def rtf(self) -> float:
        return self.seconds_wall / self.seconds_audio if self.seconds_audio > 0 else 0.0


def plan_outputs(inputs: Iterable[str | os.PathLike], outdir: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs; folders are walked and their tree kept under outdir."""
    outdir = Path(outdir)
    pairs: list[tuple[Path, Path]] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS and not f.name.startswith("."):
                    pairs.append((f, outdir / p.name / f.relative_to(p)))
        else:
            pairs.append((p, outdir / p.name))
    return pairs


def render_file(input_path: str | os.PathLike, output_path: str | os.PathLike, converter: Any, *,
                existing: str = "skip", subtype: str | None = None) -> RenderResult:
    """Convert one file with ``converter`` (a :class:`svc_dsp.Converter`), never raising for
    bad input: failures come back as a RenderResult with status 'failed' and a message
    that names the file, what was wrong and what to do.

    The output keeps the input's sample rate, channel count, length and sample format
    (``subtype`` overrides the format); samples outside [-1, 1] are clipped for integer
    formats and counted in ``clipped_samples``.
    """
    from svc_dsp.audio.io import AtomicAudioWriter, load_audio
    from svc_dsp.errors import SvcError

    src, dst = Path(input_path), Path(output_path)
    res = RenderResult(str(src), str(dst), "failed")
    t0 = time.perf_counter()
    if existing not in EXISTING_POLICIES:
        res.message = f"existing-output policy {existing!r}; allowed: {', '.join(EXISTING_POLICIES)}"
        return res
    if dst.exists():
        if existing == "skip":
            res.status, res.message = "skipped", "output exists (use --overwrite to replace it)"
            return res
        if existing == "error":
            res.message = f"output '{dst}' exists; remove it or pass --overwrite / --skip-existing"
            return res
    try:
        if src.resolve() == dst.resolve():
            raise SvcError(f"output '{dst}' is the input file itself; choose another output folder")
        audio, sr, info = load_audio(src)
        res.sample_rate, res.channels = sr, info.channels
        res.seconds_audio = info.frames / sr
        out = converter.convert(audio, sr)
        res.warnings = list(getattr(converter, "last_warnings", []))
        dst.parent.mkdir(parents=True, exist_ok=True)
        fmt = None if dst.suffix else info.format
        with AtomicAudioWriter(dst, sr, info.channels, format=fmt, subtype=subtype or info.subtype) as w:
            w.write(out)
        res.clipped_samples = w.clipped_samples
        res.status = "ok"
        if w.clipped_samples:
            res.warnings.append(f"{w.clipped_samples} samples clipped to [-1, 1] in {w.subtype if hasattr(w, 'subtype') else 'PCM'}; "
                                f"lower --output-gain-db or write float (--subtype FLOAT)")
    except SvcError as e:
        res.message = f"{src}: {e}"
    except MemoryError:
        res.message = f"{src}: out of memory; split the file or render fewer files at once (--jobs)"
    except Exception as e:  # one bad file never stops a batch; the message keeps the cause
        res.message = f"{src}: unexpected {type(e).__name__}: {e}"
    res.seconds_wall = time.perf_counter() - t0
    return res


# -- batches ------------------------------------------------------------------------
_WORKER_CONVERTER: Any = None


def _worker_init(model_ref: str, params: dict[str, Any]) -> None:
    global _WORKER_CONVERTER
    import torch

    torch.set_num_threads(1)
    from svc_dsp.engine.converter import Converter

    _WORKER_CONVERTER = Converter(model_ref, **params)


def _worker_render(src: str, dst: str, existing: str, subtype: str | None) -> RenderResult:
    return render_file(src, dst, _WORKER_CONVERTER, existing=existing, subtype=subtype)


def render_batch(pairs: list[tuple[Path, Path]], model_ref: str, params: dict[str, Any], *, jobs: int = 1,
                 existing: str = "skip", subtype: str | None = None,
                 progress: Callable[[int, int, RenderResult], None] | None = None) -> list[RenderResult]:
    """Render all pairs with ``jobs`` worker processes (each loads the model once)."""
    results: list[RenderResult] = []
    total = len(pairs)
    if jobs <= 1 or total <= 1:
        from svc_dsp.engine.converter import Converter

        conv = Converter(model_ref, **params)
        for i, (s, d) in enumerate(pairs):
            r = render_file(s, d, conv, existing=existing, subtype=subtype)
            results.append(r)
            if progress:
                progress(i + 1, total, r)
        return results
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = mp.get_context("spawn")  # torch and fork do not mix
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(model_ref, params)) as ex:
        futs = {ex.submit(_worker_render, str(s), str(d), existing, subtype): i for i, (s, d) in enumerate(pairs)}
        done: dict[int, RenderResult] = {}
        for n, f in enumerate(as_completed(futs)):
            r = f.result()
            done[futs[f]] = r
            if progress:
                progress(n + 1, total, r)
    return [done[i] for i in range(total)]


def summary_table(results: list[RenderResult]) -> str:
    """A plain-text table: file, status, audio seconds, real-time factor, note."""
    rows = [("file", "status", "audio s", "RTF", "note")]
    for r in results:
        note = r.message or "; ".join(r.warnings)
        rows.append((Path(r.input).name, r.status, f"{r.seconds_audio:.1f}",
                     f"{r.rtf:.3f}" if r.status == "ok" else "-", note[:100]))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in rows]
    ok = sum(r.status == "ok" for r in results)
    sk = sum(r.status == "skipped" for r in results)
    fail = sum(r.status == "failed" for r in results)
    lines.append(f"{ok} rendered, {sk} skipped, {fail} failed")
    return "\n".join(lines)
