"""What runs on a Dask worker: one task renders one file with the shared renderer.

Imported by the workers (they need svc-host installed, the same version as the client), never
by the engine. A task never raises for a file that cannot be rendered: like a local render it
returns a :class:`host_bridge.render.RenderResult` with status 'failed' and the reason, so the
client tells our failures (values) from worker deaths (the scheduler reschedules those).

Each worker keeps the converters it has built (key: model reference, parameters, torch threads
and the worker thread), so a model is loaded once per worker thread, not once per file.
"""
from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host_bridge.render import RenderResult, render_file

CACHE_SIZE = 4  # converters kept per worker process (a model is tens of MB)
CANCEL_POLL_S = 0.5

_cache: OrderedDict[tuple, Any] = OrderedDict()
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class RenderTask:
    """One file for one worker.

    ``src``/``dst``: paths as the worker sees them (shared storage). With ``data`` set (transfer
    mode) the worker writes ``data`` to a private temp folder under the name of ``src``, renders
    there, and returns the output's bytes; ``dst`` then only gives the output's file name.
    ``automation``: lanes already resolved at this file's sample rate, or None.
    ``cancel``: name of a ``distributed.Event`` that, once set, stops the batch.
    """

    src: str
    dst: str
    model_ref: str
    params: dict[str, Any]
    existing: str = "skip"
    subtype: str | None = None
    automation: Any = None
    threads: int = 1
    cancel: str | None = None
    data: bytes | None = None
    allow_truncated: bool = False


def converter(model_ref: str, params: dict[str, Any], threads: int = 1) -> Any:
    """The worker's cached :class:`svc_dsp.Converter` for this model and these settings."""
    key = (model_ref, json.dumps(params, sort_keys=True, default=str), int(threads), threading.get_ident())
    with _cache_lock:
        conv = _cache.get(key)
        if conv is not None:
            _cache.move_to_end(key)
            return conv
    import torch

    from svc_dsp.engine.converter import Converter

    torch.set_num_threads(max(1, int(threads)))
    conv = Converter(model_ref, **params)
    with _cache_lock:
        _cache[key] = conv
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return conv


def cached_models() -> list[str]:
    """Model references this worker holds (for tests and diagnostics)."""
    with _cache_lock:
        return [k[0] for k in _cache]


class _Cancelled(Exception):
    pass


def _cancel_check(name: str | None) -> Any:
    """A callable raising _Cancelled once the batch's cancel event is set (polled at most every
    CANCEL_POLL_S, so a long file stops within a chunk or so after Ctrl-C)."""
    if not name:
        return lambda *_a, **_k: None
    from distributed import Event

    ev = Event(name)
    last = [0.0]

    def check(*_a: Any, **_k: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= CANCEL_POLL_S:
            last[0] = now
            if ev.is_set():
                raise _Cancelled()
    return check


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except Exception:  # noqa: BLE001 - called outside a worker (tests, local use)
        return f"pid {os.getpid()}"


def _render(task: RenderTask, src: str, dst: str, check: Any) -> RenderResult:
    try:
        conv = converter(task.model_ref, task.params, task.threads)
    except Exception as e:  # noqa: BLE001 - a model a worker cannot load fails its files, reported
        res = RenderResult(task.src, task.dst, "failed")
        res.message = (f"{task.src}: worker {_worker_name()} cannot load model '{task.model_ref}': {e} "
                       f"(workers need the model on shared storage or in their own catalog)")
        return res
    return render_file(src, dst, conv, existing=task.existing, subtype=task.subtype, automation=task.automation,
                       allow_truncated=task.allow_truncated, progress=check)


def render_task(task: RenderTask) -> tuple[RenderResult, bytes | None, str]:
    """Run one task -> (result, output bytes in transfer mode else None, worker address).

    Never raises for the file's own problems; a cancelled batch gives status 'failed' with
    message 'cancelled' and no output (the atomic writer removes its temp file)."""
    check = _cancel_check(task.cancel)
    who = _worker_name()
    try:
        check()
    except _Cancelled:
        return RenderResult(task.src, task.dst, "failed", message="cancelled"), None, who
    if task.data is None:
        res = _render(task, task.src, task.dst, check)
        out = None
    else:
        with tempfile.TemporaryDirectory(prefix="svc-cluster-") as tmp:
            src = Path(tmp) / "in" / Path(task.src).name
            dst = Path(tmp) / "out" / Path(task.dst).name
            src.parent.mkdir()
            src.write_bytes(task.data)
            res = _render(task, str(src), str(dst), check)
            out = dst.read_bytes() if res.status == "ok" else None
            # the client's paths, not the worker's temp folder, in what the user reads
            res.message = res.message.replace(str(src), task.src).replace(str(dst), task.dst)
            res.input, res.output = task.src, task.dst
    if "_Cancelled" in res.message:
        res.message = "cancelled"
    return res, out, who
