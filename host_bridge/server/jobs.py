"""Render jobs: files or folders under ``--input-root`` -> ``--output-root``, one at a time.

Paths arrive relative to the roots. A path is refused when it is absolute, contains
``..``, a NUL or a backslash, or resolves (following every symlink) outside its root; a
folder's files are checked one by one the same way. The OSC thread only checks the two paths
and the queue limit (:data:`MAX_QUEUED` jobs planning or waiting) and answers with a job id;
walking a folder happens on the planner thread, which refuses folders of more than
:data:`MAX_FILES_PER_JOB` audio files (or more than :data:`MAX_ENTRIES_SCANNED` entries). Each job runs in a separate process
(spawned, so torch never forks and the audio thread never waits for the renderer's GIL)
with the shared renderer :func:`host_bridge.render.render_file`. Cancel terminates that
process; the renderer writes through a temp file + rename, so no partial output is left.

Events (to the submitter and ``jobs`` subscribers): ``/svc/job/progress id fraction done
total current`` (fraction over the whole job, updated while a file renders when the renderer
reports progress; done/total count files), ``/svc/job/file id status output sha256``, ``/svc/job/done id status output
sha256 ok failed``, ``/svc/job/cancelled id``, ``/svc/job/error id message``.
"""
from __future__ import annotations

import inspect
import itertools
import os
import queue
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_bridge.cluster import serve_job
from host_bridge.render import AUDIO_EXTENSIONS, EXISTING_POLICIES, render_file
from svc_dsp.engine.converter import Converter
from svc_dsp.errors import RenderError
from svc_dsp.models.folder import sha256_file as sha256_of

MAX_QUEUED = 16                # jobs planning or waiting to run
MAX_FILES_PER_JOB = 2000       # audio files in one folder job; submit subfolders for more
MAX_ENTRIES_SCANNED = 100_000  # directory entries one plan may look at
PROGRESS_STEP = 0.01           # a file's progress is reported each time it advances by 1 %


def resolve_under(root: Path, rel: str, what: str, must_exist: bool) -> Path:
    """``root / rel`` if it stays inside ``root`` after resolving symlinks, else RenderError."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise RenderError(f"{what} path {rel!r} is not allowed; give a path relative to the {what} root")
    p = Path(rel)
    if p.is_absolute() or rel.startswith("~"):
        raise RenderError(f"{what} path '{rel}' is absolute; give a path relative to the {what} root")
    if ".." in p.parts:
        raise RenderError(f"{what} path '{rel}' contains '..'; paths must stay inside the {what} root")
    full = (root / p).resolve()
    if full != root and root not in full.parents:
        raise RenderError(f"{what} path '{rel}' leads outside the {what} root (through a symlink); refused")
    if must_exist and not full.exists():
        raise RenderError(f"{what} '{rel}' does not exist under the {what} root")
    return full


@dataclass
class Job:
    id: int
    pairs: list[tuple[Path, Path]]
    existing: str
    reply: tuple[str, int]
    output_rel: str
    state: str = "queued"  # planning, queued, running, done, failed, cancelled
    input_rel: str = ""
    proc: Any = None
    conn: Any = None
    results: list[dict[str, Any]] = field(default_factory=list)


def _child(conn: Any, model_folder: str, params: dict[str, Any], pairs: list[tuple[str, str]], existing: str,
           cluster: str | None = None) -> None:
    """Job process: load the model once, render every pair, report over ``conn``."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds, so temp files are removed
    if cluster:  # serve --cluster: the files go to Dask workers (host_bridge.cluster)
        return serve_job(conn, cluster, model_folder, params, pairs, existing)
    import torch

    torch.set_num_threads(1)
    conv = Converter(model_folder, **params)
    n = len(pairs)
    reports = "progress" in inspect.signature(render_file).parameters
    for i, (src, dst) in enumerate(pairs):
        conn.send(("progress", i, n, src))
        kw: dict[str, Any] = {}
        if reports:
            last = [0.0]

            def progress(done: int, total: int, i: int = i, src: str = src) -> None:
                frac = min(done, total) / total if total > 0 else 0.0
                if PROGRESS_STEP <= frac - last[0] and frac < 1.0:
                    last[0] = frac
                    conn.send(("within", i, n, int(done), int(total), src))

            kw["progress"] = progress
        r = render_file(src, dst, conv, existing=existing, **kw)
        sha = sha256_of(Path(dst)) if r.status in ("ok", "skipped") and Path(dst).is_file() else ""
        conn.send(("file", i, n, r.status, r.message, dst, sha))
    conn.send(("end",))


class JobManager:
    cluster: str | None = None  # a Dask scheduler address or local:N (serve --cluster)

    def __init__(self, session: Any, input_root: Path, output_root: Path) -> None:
        self.s = session
        self.input_root = Path(input_root).resolve()
        self.output_root = Path(output_root).resolve()
        if not self.input_root.is_dir():
            raise RenderError(f"--input-root '{input_root}' is not a folder")
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._queue: list[Job] = []
        self._current: Job | None = None
        self._to_plan: "queue.Queue[Job | None]" = queue.Queue()
        self._planner: threading.Thread | None = None

    # -- planning (planner thread) -----------------------------------------------------------
    def _folder_files(self, folder: Path, inp: str) -> list[Path]:
        """Audio files below ``folder`` (sorted, hidden ones left out), refusing more than the caps."""
        out: list[Path] = []
        seen = 0
        for root, dirs, files in os.walk(folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            seen += len(dirs) + len(files)
            if seen > MAX_ENTRIES_SCANNED:
                raise RenderError(f"input folder '{inp}' holds more than {MAX_ENTRIES_SCANNED} entries (the per-job "
                                  f"scan limit); submit its subfolders as separate jobs")
            for name in files:
                if not name.startswith(".") and os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS:
                    out.append(Path(root) / name)
            if len(out) > MAX_FILES_PER_JOB:
                raise RenderError(f"input folder '{inp}' holds more than {MAX_FILES_PER_JOB} audio files (the "
                                  f"per-job limit); submit its subfolders as separate jobs")
        return sorted(f for f in out if f.is_file())

    def plan(self, inp: str, outp: str) -> list[tuple[Path, Path]]:
        """(input, output) pairs of one job; walks a folder, so it runs on the planner thread."""
        src = resolve_under(self.input_root, inp, "input", must_exist=True)
        dst = resolve_under(self.output_root, outp, "output", must_exist=False)
        if src.is_file():
            if dst.is_dir():
                dst = dst / src.name
            return [(src, dst)]
        pairs = []
        for f in self._folder_files(src, inp):
            rel = f.relative_to(src)
            real = resolve_under(self.input_root, str(f.relative_to(self.input_root)), "input", True)
            pairs.append((real, resolve_under(self.output_root, str(Path(outp) / rel), "output", False)))
        if not pairs:
            raise RenderError(f"input folder '{inp}' holds no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})")
        return pairs

    def _plan_loop(self) -> None:
        while True:
            job = self._to_plan.get()
            if job is None:
                return
            if job.state != "planning":  # cancelled while waiting
                continue
            try:
                pairs = self.plan(job.input_rel, job.output_rel)
            except RenderError as e:
                job.state = "failed"
                self._send(job, "/svc/job/error", job.id, str(e))
                continue
            except OSError as e:
                job.state = "failed"
                self._send(job, "/svc/job/error", job.id, f"cannot read input '{job.input_rel}': {e.strerror or e}")
                continue
            with self._lock:
                if job.state != "planning":
                    continue
                job.pairs, job.state = pairs, "queued"
                self._queue.append(job)
                start = self._current is None
            if start:
                self._start_next()

    # -- submit / cancel (OSC thread) ------------------------------------------------------
    def submit(self, inp: str, outp: str, existing: str, reply: tuple[str, int]) -> Job:
        """Check the two paths and the queue limit, register the job (state 'planning'); cheap.

        Call :meth:`start_planning` after the submitter has been told the job id."""
        if existing not in EXISTING_POLICIES:
            raise RenderError(f"existing-output policy {existing!r}; allowed: {', '.join(EXISTING_POLICIES)}")
        resolve_under(self.input_root, inp, "input", must_exist=True)
        resolve_under(self.output_root, outp, "output", must_exist=False)
        with self._lock:
            waiting = sum(j.state in ("planning", "queued") for j in self.jobs.values())
            if waiting >= MAX_QUEUED:
                raise RenderError(f"{MAX_QUEUED} jobs are already queued; wait for some to finish")
            job = Job(next(self._ids), [], existing, reply, outp, state="planning", input_rel=inp)
            self.jobs[job.id] = job
        return job

    def start_planning(self, job: Job) -> None:
        """Hand ``job`` to the planner thread (started on first use)."""
        with self._lock:
            if self._planner is None:
                self._planner = threading.Thread(target=self._plan_loop, name="svc-job-planner", daemon=True)
                self._planner.start()
        self._to_plan.put(job)

    def cancel(self, jid: int) -> None:
        job = self.jobs.get(jid)
        if job is None or job.state in ("done", "failed", "cancelled"):
            raise RenderError(f"no running or queued job {jid}")
        with self._lock:
            if job.state == "planning" or job in self._queue:
                if job in self._queue:
                    self._queue.remove(job)
                job.state = "cancelled"
                self._send(job, "/svc/job/cancelled", job.id)
                return
        job.state = "cancelled"
        if job.proc is not None:
            job.proc.terminate()

    # -- running ---------------------------------------------------------------------------
    def _send(self, job: Job, address: str, *args: Any) -> None:
        targets = {job.reply} | set(self.s.clients.subscribers("jobs"))
        for to in targets:
            self.s.send(to, address, *args)

    def _start_next(self) -> None:
        import multiprocessing as mp

        with self._lock:
            if self._current is not None or not self._queue:
                return
            job = self._current = self._queue.pop(0)
            job.state = "running"
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe(duplex=False)
        params = {k: v for k, v in self.s.values.items() if v is not None}
        folder = str(getattr(self.s.model, "folder", None) or self.s.model_name)
        job.proc = ctx.Process(target=_child, args=(child, folder, params,
                                                    [(str(a), str(b)) for a, b in job.pairs], job.existing,
                                                    self.cluster),
                               name=f"svc-job-{job.id}", daemon=True)
        job.proc.start()
        child.close()
        if job.state == "cancelled":  # cancelled between leaving the queue and its process starting
            job.proc.terminate()
        job.conn = parent
        threading.Thread(target=self._watch, args=(job,), name=f"svc-job-watch-{job.id}", daemon=True).start()

    def _rel(self, p: str) -> str:
        try:
            return str(Path(p).relative_to(self.output_root))
        except ValueError:
            return p

    def _watch(self, job: Job) -> None:
        ok = failed = 0
        ended = False
        while True:
            try:
                ev = job.conn.recv()
            except (EOFError, OSError):
                break
            if ev[0] == "progress":
                _, i, n, src = ev
                self._send(job, "/svc/job/progress", job.id, float(i) / n, i, n, Path(src).name)
            elif ev[0] == "within":
                _, i, n, done, total, src = ev
                frac = (i + min(done, total) / total) / n
                self._send(job, "/svc/job/progress", job.id, float(frac), i, n, Path(src).name)
            elif ev[0] == "file":
                _, i, n, status, message, dst, sha = ev
                ok += status in ("ok", "skipped")
                failed += status == "failed"
                job.results.append({"status": status, "output": dst, "sha256": sha, "message": message})
                self._send(job, "/svc/job/file", job.id, status, self._rel(dst), sha)
                if status == "failed":
                    self._send(job, "/svc/job/error", job.id, message)
                self._send(job, "/svc/job/progress", job.id, float(i + 1) / n, i + 1, n, Path(dst).name)
            elif ev[0] == "end":
                ended = True
                break
        job.proc.join(timeout=10)
        if job.proc.is_alive():
            job.proc.kill()
        if job.state == "cancelled":
            self._send(job, "/svc/job/cancelled", job.id)
        elif not ended:
            job.state = "failed"
            self._send(job, "/svc/job/error", job.id, f"render process ended unexpectedly (exit code "
                                                        f"{job.proc.exitcode}); see the server's stderr")
        else:
            job.state = "done" if failed == 0 else "failed"
            single = len(job.pairs) == 1 and job.results
            out = self._rel(job.results[0]["output"]) if single else job.output_rel
            sha = job.results[0]["sha256"] if single else ""
            self._send(job, "/svc/job/done", job.id, job.state, out, sha, ok, failed)
        with self._lock:
            self._current = None
        self._start_next()

    def close(self) -> None:
        self._to_plan.put(None)
        with self._lock:
            for j in self.jobs.values():
                if j.state == "planning":
                    j.state = "cancelled"
            self._queue.clear()
            job = self._current
        if job is not None and job.proc is not None and job.proc.is_alive():
            job.state = "cancelled"
            job.proc.terminate()
            job.proc.join(timeout=5)
