"""A Dask scheduler and workers as subprocesses on 127.0.0.1, ended by PID; every wait bounded."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180.0  # torch imports on a busy 2-core machine are slow


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DaskProcs:
    scheduler: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)  # address -> process


def _stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


@contextmanager
def dask_cluster(tmp: Path, n_workers: int = 2) -> Iterator[DaskProcs]:
    """``python -m distributed.cli.dask_scheduler`` and ``n_workers`` single-threaded workers
    without nannies (killing a worker's PID ends it for good), all bound to 127.0.0.1."""
    from distributed import Client

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    port = free_port()
    addr = f"tcp://127.0.0.1:{port}"
    out = DaskProcs(addr)
    logs = tmp / "dask-logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        out.procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"], env=env, cwd=tmp, stdout=subprocess.DEVNULL,
            stderr=open(logs / "scheduler.log", "wb")))
        for k in range(n_workers):
            wport = free_port()
            p = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", addr, "--host", "127.0.0.1",
                 "--worker-port", str(wport), "--nthreads", "1", "--no-nanny", "--no-dashboard",
                 "--death-timeout", "60", "--local-directory", str(tmp / f"w{k}")],
                env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=open(logs / f"worker{k}.log", "wb"))
            out.procs.append(p)
            out.workers[f"tcp://127.0.0.1:{wport}"] = p
        with Client(addr, timeout=START_TIMEOUT_S) as c:
            c.wait_for_workers(n_workers, timeout=START_TIMEOUT_S)
        yield out
    finally:
        for p in reversed(out.procs):
            _stop(p)


def processing_workers(address: str) -> list[str]:
    """Addresses of the workers that hold tasks right now (running or queued on them)."""
    from distributed import Client

    with Client(address, timeout=30) as c:
        return [w for w, keys in c.processing().items() if keys]


def wait_until(cond, timeout: float, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())
