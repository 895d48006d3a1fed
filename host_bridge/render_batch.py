"""Rendering a planned batch: one process or ``jobs`` worker processes, progress callbacks,
clean stop on SIGINT/SIGTERM, and the summary table.

Plan the batch first (:func:`host_bridge.render_plan.plan_batch`), then :func:`render_batch` the
pairs. Every file goes through :func:`host_bridge.render.render_file`.
"""
from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path
from typing import Any, Callable, Iterable

from host_bridge.render import RenderResult, render_file
from host_bridge.render_stop import RenderInterrupted, install_worker_handler
from svc_dsp.engine.converter import Converter
from svc_dsp.fileops import remove_stale_partials

__all__ = ["render_batch", "summary_table", "clean_stale_partials", "result_note"]

_WORKER_CONVERTER: Any = None


def _worker_init(model_ref: str, params: dict[str, Any], threads: int = 1) -> None:
    global _WORKER_CONVERTER
    import torch

    install_worker_handler()
    torch.set_num_threads(max(1, threads))
    try:
        _WORKER_CONVERTER = Converter(model_ref, **params)
    except KeyboardInterrupt:  # stopped while loading: nothing written yet, no traceback to show
        os._exit(130)


def _worker_render(src: str, dst: str, existing: str, subtype: str | None, automation: Any = None,
                   allow_truncated: bool = False) -> RenderResult:
    try:
        return render_file(src, dst, _WORKER_CONVERTER, existing=existing, subtype=subtype, automation=automation,
                           allow_truncated=allow_truncated)
    except KeyboardInterrupt as e:  # the temp file is already gone; take no further file from the queue
        os._exit(128 + (e.signum if isinstance(e, RenderInterrupted) else 2))


def clean_stale_partials(folders: Iterable[Path]) -> list[Path]:
    """Remove temp files of ours left in ``folders`` by renders that were killed (SIGKILL, power
    loss): only names of the exact form ``.<name>.<pid>.<hex>.partial`` whose process is gone
    (see :func:`svc_dsp.fileops.stale_partials`). Returns the removed paths."""
    removed: list[Path] = []
    for d in folders:
        if d.is_dir():
            removed += remove_stale_partials(d)
    return removed


def render_batch(pairs: list[tuple[Path, Path]], model_ref: str, params: dict[str, Any], *, jobs: int = 1,
                 existing: str = "skip", subtype: str | None = None, automation: Any = None,
                 threads: int = 1, allow_truncated: bool = False,
                 progress: Callable[[int, int, RenderResult], None] | None = None,
                 file_started: Callable[[Path], None] | None = None,
                 file_progress: Callable[[int, int], None] | None = None) -> list[RenderResult]:
    """Render all pairs with ``jobs`` worker processes (each loads the model once), each using
    ``threads`` torch threads. One thread per job is the default: on a busy machine extra
    intra-op threads spin against each other and can make a render ten times slower.

    ``progress(i, n, result)``: after each file (i of n done). ``file_started(input)`` and
    ``file_progress(done_samples, total_samples)``: while a file renders (one process only;
    with ``jobs > 1`` only ``progress`` is called). On SIGINT/SIGTERM (see
    :mod:`host_bridge.render_stop`) the file being written is discarded, workers are stopped the
    same way, and the interrupt propagates."""
    total = len(pairs)
    if jobs <= 1 or total <= 1:
        import torch

        torch.set_num_threads(max(1, threads))
        conv = Converter(model_ref, **params)
        results: list[RenderResult] = []
        for i, (s, d) in enumerate(pairs):
            if file_started:
                file_started(s)
            r = render_file(s, d, conv, existing=existing, subtype=subtype, automation=automation,
                            allow_truncated=allow_truncated, progress=file_progress)
            results.append(r)
            if progress:
                progress(i + 1, total, r)
        return results
    return _render_pool(pairs, model_ref, params, jobs, existing, subtype, automation, threads, allow_truncated,
                        progress)


def _render_pool(pairs: list[tuple[Path, Path]], model_ref: str, params: dict[str, Any], jobs: int, existing: str,
                 subtype: str | None, automation: Any, threads: int, allow_truncated: bool,
                 progress: Callable[[int, int, RenderResult], None] | None) -> list[RenderResult]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    total = len(pairs)
    ctx = mp.get_context("spawn")  # torch and fork do not mix
    ex = ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_worker_init,
                             initargs=(model_ref, params, threads))
    done: dict[int, RenderResult] = {}
    try:
        futs = {ex.submit(_worker_render, str(s), str(d), existing, subtype, automation, allow_truncated): i
                for i, (s, d) in enumerate(pairs)}
        for n, f in enumerate(as_completed(futs)):
            r = f.result()
            done[futs[f]] = r
            if progress:
                progress(n + 1, total, r)
    except BaseException:
        # stop the workers the same way (each removes its temp file), then wait for them
        procs = list(getattr(ex, "_processes", {}).values())  # no public handle on the workers
        ex.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(30)
        raise
    ex.shutdown(wait=True)
    return [done[i] for i in range(total)]


def result_note(r: RenderResult) -> str:
    """The result's message and warnings, without the file name the table already shows."""
    out = []
    for n in ([r.message] if r.message else []) + r.warnings:
        for prefix in (f"{r.input}: ", f"file '{r.input}': "):
            if n.startswith(prefix):
                n = n[len(prefix):]
        out.append(n.replace(f"file '{r.input}': ", ""))
    return "; ".join(out)


def summary_table(results: list[RenderResult], width: int | None = None) -> str:
    """A plain-text table: file (each path once), status, audio seconds, real-time factor, note.
    Notes are never cut: a long note wraps onto further lines under the note column (``width``:
    the line width to wrap at; default: the terminal's, at least 100)."""
    width = width or max(100, shutil.get_terminal_size((120, 24)).columns)
    rows = [("file", "status", "audio s", "RTF", "note")]
    for r in results:
        rows.append((r.input, r.status, f"{r.seconds_audio:.1f}",
                     f"{r.rtf:.3f}" if r.status == "ok" else "-", result_note(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    indent = sum(widths) + 2 * 4
    lines = []
    for row in rows:
        head = "  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  "
        wrapped = textwrap.wrap(row[4], max(40, width - indent), break_long_words=False,
                                break_on_hyphens=False) or [""]
        lines.append((head + wrapped[0]).rstrip())
        lines += [" " * indent + more for more in wrapped[1:]]
    ok = sum(r.status == "ok" for r in results)
    sk = sum(r.status == "skipped" for r in results)
    fail = sum(r.status == "failed" for r in results)
    lines.append(f"{ok} rendered, {sk} skipped, {fail} failed")
    return "\n".join(lines)
