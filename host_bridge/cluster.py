"""Render a batch on a Dask cluster: one task per file, the same bytes as a local render.

``svc-host render ... --cluster tcp://HOST:PORT`` (a running ``dask scheduler``) or
``--cluster local:N`` (a LocalCluster of N single-threaded worker processes on 127.0.0.1).
Files are not split: a task renders one whole file through :func:`host_bridge.render.render_file`,
so the output is byte-identical to ``svc-host render`` on one machine (docs/cluster.md).

Faults: a worker that dies mid-task is noticed by the scheduler, which runs its tasks on
another worker (Dask gives up on a file after ``distributed.scheduler.allowed-failures`` deaths,
default 3, and we report that file as failed); a file that fails (bad audio, missing model) comes
back as a failed result, like locally, and is not retried. Ctrl-C sets the batch's cancel event
(running tasks stop at their next chunk, their temp files removed), cancels the futures, and
clears temp files left by workers that died.
"""
from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from svc_dsp.errors import SvcError

if TYPE_CHECKING:  # the renderer (numpy, ...) loads only when a batch runs; --help stays instant
    from host_bridge.render import RenderResult

INSTALL_HINT = 'pip install -e ".[cluster]"  (or: pip install distributed)'
CONNECT_TIMEOUT_S = 20.0
NO_WORKER_TIMEOUT_S = 120.0  # a batch with no worker at all for this long stops with an error
CANCEL_WAIT_S = 15.0


class ClusterError(SvcError):
    """A cluster that cannot be reached or used."""


def require_distributed() -> None:
    """Raise ClusterError (one line: what to install) when Dask distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClusterError(f"--cluster needs Dask distributed, which is not installed; {INSTALL_HINT}") from None


def parse_cluster(spec: str) -> tuple[str, int]:
    """'tcp://HOST:PORT' -> ('address', 0); 'local:N' -> ('local', N)."""
    if spec.startswith("local:"):
        n = spec.split(":", 1)[1]
        if not n.isdigit() or not 1 <= int(n) <= 256:
            raise ClusterError(f"--cluster {spec!r}: local:N needs N = 1..256 worker processes, e.g. local:2")
        return "local", int(n)
    if "://" in spec and spec.split("://", 1)[1] and spec.split("://", 1)[0] in ("tcp", "tls", "ucx", "inproc"):
        return spec, 0
    raise ClusterError(f"--cluster {spec!r}: give a scheduler address tcp://HOST:PORT (from `dask scheduler`) "
                       f"or local:N to start N worker processes here")


def check_cluster(spec: str) -> str:
    """``spec`` when Dask is installed and ``spec`` is well formed, else ClusterError (one line)."""
    require_distributed()
    parse_cluster(spec)
    return spec


@contextlib.contextmanager
def connect(spec: str, *, wait_workers_s: float = 60.0) -> Iterator[Any]:
    """A ``distributed.Client`` for ``spec`` (see :func:`parse_cluster`); a LocalCluster it
    started is closed on exit. Waits up to ``wait_workers_s`` for a first worker."""
    require_distributed()
    import logging

    from distributed import Client, LocalCluster

    kind, n = parse_cluster(spec)
    cluster = None
    try:
        if kind == "local":
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        else:
            try:
                client = Client(kind, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as e:
                raise ClusterError(f"--cluster {spec}: no Dask scheduler answered ({e}); start one with "
                                   f"`dask scheduler --host HOST` or use --cluster local:N") from None
        try:
            try:
                client.wait_for_workers(1, timeout=wait_workers_s)
            except TimeoutError:
                raise ClusterError(f"--cluster {spec}: the scheduler has no workers after {wait_workers_s:.0f} s; "
                                   f"start some with `dask worker {spec} --nthreads 1`") from None
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


def _precheck(src: Path, dst: Path, existing: str) -> RenderResult | None:
    """What the client decides alone in transfer mode: render_file's own pre-checks."""
    from host_bridge.render import output_precheck

    return output_precheck(src, dst, existing)


def _lanes_for(src: Path, automation: Any) -> Any:
    """Automation lanes at this file's rate, computed here so workers need not see the file."""
    if automation is None:
        return None
    from host_bridge.automation import resolve_lanes
    from svc_dsp.audio.io import read_info

    try:
        return resolve_lanes(automation, read_info(src).sample_rate)
    except SvcError:
        return automation  # the worker reports the file's own problem, as render_file would


def _partials(dst: Path) -> list[Path]:
    """Temp files of the atomic writers for ``dst`` (svc_dsp.fileops naming). Their process ids
    belong to the workers' hosts, so here they cannot tell whether a writer still runs."""
    from svc_dsp.fileops import temps_of

    return temps_of(dst)


def _clear_partials(pairs: list[tuple[Path, Path]], wait_s: float) -> None:
    """Wait (bounded) for running tasks to remove their temp files, then remove what is left
    (a worker killed mid-write cannot clean up after itself)."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end and any(_partials(d) for _, d in pairs):
        time.sleep(0.2)
    for _, d in pairs:
        for p in _partials(d):
            p.unlink(missing_ok=True)


def _first_done(futures: list[Any], timeout_s: float) -> list[Any]:
    """The futures that are done, polled for at most ``timeout_s`` until one is. Polling instead of
    ``distributed.wait``: that one waits through the process's default client, whose event loop
    need not be the loop of the client these futures belong to."""
    end = time.monotonic() + timeout_s
    while True:
        done = [f for f in futures if f.done()]
        if done or time.monotonic() >= end:
            return done
        time.sleep(0.02)


def render_cluster(pairs: list[tuple[Path, Path]], model_ref: str, params: dict[str, Any], *, cluster: str,
                   existing: str = "skip", subtype: str | None = None, automation: Any = None,
                   threads: int = 1, allow_truncated: bool = False, transfer: bool = False,
                   progress: Callable[[int, int, RenderResult], None] | None = None,
                   client: Any = None) -> list[RenderResult]:
    """Render ``pairs`` on the Dask cluster ``cluster`` -> results in the order of ``pairs``.

    The same contract as :func:`host_bridge.render.render_batch`: one RenderResult per pair,
    ``progress(done, total, result)`` as files complete (in completion order). Shared storage
    (default): workers read inputs and write outputs at these paths, atomically. ``transfer``:
    the client sends each input's bytes and writes the returned output itself (temp + rename);
    at most 2 files per worker are in flight then, so memory stays bounded. ``client``: an open
    ``distributed.Client`` to use instead of connecting to ``cluster``. Each worker result also
    carries ``worker`` (its address) as an attribute.
    """
    if client is None:
        with connect(cluster) as c:
            return render_cluster(pairs, model_ref, params, cluster=cluster, existing=existing, subtype=subtype,
                                  automation=automation, threads=threads, allow_truncated=allow_truncated,
                                  transfer=transfer, progress=progress, client=c)
    from host_bridge.cluster_worker import RenderTask, render_task
    from host_bridge.render import RenderResult

    given = [(str(s), str(d)) for s, d in pairs]  # the report names files as the caller did
    pairs = [(Path(s).absolute(), Path(d).absolute()) for s, d in pairs]
    total = len(pairs)
    cancel = f"svc-cancel-{uuid.uuid4().hex}"
    results: dict[int, RenderResult] = {}
    queue: list[int] = []
    for i, (s, d) in enumerate(pairs):
        pre = _precheck(s, d, existing) if transfer else None
        if pre is not None:
            results[i] = pre
        else:
            queue.append(i)

    def submit(i: int) -> Any:
        s, d = pairs[i]
        data = s.read_bytes() if transfer else None
        task = RenderTask(str(s), str(d), model_ref, dict(params), "overwrite" if transfer else existing,
                          subtype, _lanes_for(s, automation), threads, cancel, data, allow_truncated)
        # pure=False: a rerun renders again; the key names the file for the dashboard
        return client.submit(render_task, task, key=f"svc-render-{d.name}-{uuid.uuid4().hex[:8]}", pure=False)

    done_count = 0

    def finish(i: int, r: RenderResult) -> None:
        nonlocal done_count
        for k, a in enumerate((r.input, r.output)):
            r.message = r.message.replace(a, given[i][k]) if a != given[i][k] and a else r.message
        r.input, r.output = given[i]
        results[i] = r
        done_count += 1
        if progress:
            progress(done_count, total, r)

    for i in sorted(results):
        done_count += 1
        if progress:
            progress(done_count, total, results[i])
    window = max(2, 2 * len(client.scheduler_info().get("workers", {}))) if transfer else len(queue)
    running: dict[Any, int] = {}
    no_worker_since: float | None = None
    try:
        while queue or running:
            while queue and len(running) < window:
                i = queue.pop(0)
                try:
                    running[submit(i)] = i
                except OSError as e:
                    finish(i, RenderResult(str(pairs[i][0]), str(pairs[i][1]), "failed",
                                           message=f"{pairs[i][0]}: cannot read it ({e})"))
            if not running:
                continue
            finished = _first_done(list(running), timeout_s=2.0)
            for fut in finished:
                i = running.pop(fut)
                finish(i, _collect(fut, pairs[i], transfer))
            if not finished:
                workers = client.scheduler_info().get("workers", {})
                no_worker_since = None if workers else (no_worker_since or time.monotonic())
                if no_worker_since and time.monotonic() - no_worker_since > NO_WORKER_TIMEOUT_S:
                    raise ClusterError(f"--cluster {cluster}: no worker left for {NO_WORKER_TIMEOUT_S:.0f} s with "
                                       f"{len(running) + len(queue)} files to go; start workers and render again "
                                       f"(finished outputs are kept; --skip-existing skips them)")
    except BaseException:
        _cancel(client, cancel, list(running))
        _clear_partials(pairs if not transfer else [], CANCEL_WAIT_S)
        raise
    if not transfer:
        _clear_partials(pairs, 0.0)
    return [results[i] for i in range(total)]


def _collect(fut: Any, pair: tuple[Path, Path], transfer: bool) -> RenderResult:
    """A finished future -> its RenderResult (writing the output here in transfer mode)."""
    from host_bridge.render import RenderResult

    src, dst = pair
    try:
        res, data, who = fut.result()
    except Exception as e:  # noqa: BLE001 - infrastructure, not the file: name it, never retry forever
        from distributed.scheduler import KilledWorker

        res = RenderResult(str(src), str(dst), "failed")
        if isinstance(e, KilledWorker):
            res.message = (f"{src}: workers died while rendering it, more often than the scheduler allows "
                           f"(distributed.scheduler.allowed-failures); check worker memory and logs")
        else:
            res.message = f"{src}: the cluster could not run it ({type(e).__name__}: {e})"
        return res
    res.worker = who  # type: ignore[attr-defined]
    if transfer and data is not None:
        from svc_dsp.fileops import write_atomic

        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(dst, data)
        except OSError as e:
            res.status, res.message = "failed", f"{src}: cannot write '{dst}': {e}"
    return res


def _cancel(client: Any, event_name: str, futures: list[Any]) -> None:
    """Tell running tasks to stop and drop the rest; bounded, never raises."""
    with contextlib.suppress(Exception):
        from distributed import Event

        Event(event_name, client=client).set()
    with contextlib.suppress(Exception):
        client.cancel(futures, force=True)


def cluster_batch(spec: str, *, transfer: bool = False) -> Callable[..., list[RenderResult]]:
    """A function with :func:`host_bridge.render.render_batch`'s signature that renders on the
    cluster ``spec`` (``jobs`` is ignored: the workers decide the parallelism). Checks that Dask
    is installed and ``spec`` is well formed now, before any model loads."""
    check_cluster(spec)

    def run(pairs: list[tuple[Path, Path]], model_ref: str, params: dict[str, Any], *, jobs: int = 1,
            file_started: Any = None, file_progress: Any = None, **kw: Any) -> list[RenderResult]:
        # per-file progress happens on the workers; the client sees files complete (``progress``)
        return render_cluster(pairs, model_ref, params, cluster=spec, transfer=transfer, **kw)
    return run


def add_cluster_arguments(p: Any) -> None:
    """``--cluster`` and ``--cluster-transfer`` for ``svc-host render``."""
    p.add_argument("--cluster", metavar="tcp://HOST:PORT|local:N",
                   help="render on a Dask cluster: a scheduler's address, or local:N worker processes here; "
                        f"one task per file, same bytes as a local render (docs/cluster.md; {INSTALL_HINT})")
    p.add_argument("--cluster-transfer", action="store_true",
                   help="workers do not share this filesystem: send inputs to them and write outputs here")



def serve_job(conn: Any, cluster: str, model_ref: str, params: dict[str, Any], pairs: list[tuple[str, str]],
              existing: str) -> None:
    """The OSC server's render-job process, on a cluster: the same events over ``conn`` as a
    local job (``('file', i, n, status, message, output, sha256)`` per finished file, in
    completion order, then ``('end',)``). Terminating the process (job cancel) cancels the batch."""
    from svc_dsp.models.folder import sha256_file

    sent: set[str] = set()

    def progress(done: int, total: int, r: RenderResult) -> None:
        sent.add(str(Path(r.output).absolute()))
        ok = r.status in ("ok", "skipped") and Path(r.output).is_file()
        conn.send(("file", done - 1, total, r.status, r.message, r.output, sha256_file(Path(r.output)) if ok else ""))

    try:
        render_cluster([(Path(s), Path(d)) for s, d in pairs], model_ref, params, cluster=cluster,
                       existing=existing, progress=progress)
    except SvcError as e:  # the cluster itself (unreachable, no workers left): the files not done fail
        rest = [(s, d) for s, d in pairs if str(Path(d).absolute()) not in sent]
        for k, (s, d) in enumerate(rest):
            conn.send(("file", len(sent) + k, len(pairs), "failed", f"{s}: {e}", d, ""))
    conn.send(("end",))
