"""Batch throughput: the local ``--jobs`` path against Dask workers (``--cluster local:N``).

    python -m benchmarks cluster [--model DIR|NAME] [--files 6] [--seconds 5] [--repeats 3] [--workers 1,2]

The same files (mono 44.1 kHz PCM_16 synthetic vocals) go through every path; each figure is the
median of --repeats batches. files/s = files / wall seconds; audio s/s = seconds of audio rendered
per wall second. Rows:

- ``--jobs N``: :func:`host_bridge.render_batch.render_batch` as ``svc-host render --jobs N`` runs
  it; every batch starts its processes and loads the model (that is what the command costs).
- ``cluster local:N (warm)``: a LocalCluster of N single-threaded workers already started, the
  model already in each worker's cache (a cluster that stays up between batches); outputs are
  written by the workers.
- ``cluster local:N (start+1st)``: one batch including starting the cluster and loading the
  model, as ``svc-host render --cluster local:N`` pays once.

Dask is the extra ``pip install -e ".[cluster]"``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable


def _batch_fn() -> Callable[..., Any]:
    try:
        from host_bridge.render_batch import render_batch
    except ImportError:  # older layout
        from host_bridge.render import render_batch
    return render_batch


def _timed(fn: Callable[[Path], list[Any]], root: Path, repeats: int) -> tuple[float, int]:
    times = []
    failed = 0
    for k in range(repeats):
        out = root / f"out-{time.monotonic_ns()}-{k}"
        t0 = time.perf_counter()
        res = fn(out)
        times.append(time.perf_counter() - t0)
        failed += sum(r.status != "ok" for r in res)
        shutil.rmtree(out, ignore_errors=True)
    return statistics.median(times), failed


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks cluster")
    ap.add_argument("--model", help="model folder or catalog name (default: demo, else a random-weight model)")
    ap.add_argument("--files", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each file")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", default="1,2", help="worker counts for --jobs and local:N")
    args = ap.parse_args(argv)
    try:
        import distributed  # noqa: F401
    except ImportError:
        print('benchmark cluster needs Dask distributed: pip install -e ".[cluster]"')
        return 2
    import soundfile as sf

    from benchmarks.common import benchmark_model, machine_line
    from benchmarks.signals import vocal
    from host_bridge.cluster import connect, render_cluster

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    counts = [int(n) for n in args.workers.split(",")]
    render_batch = _batch_fn()
    sr = 44100
    with tempfile.TemporaryDirectory(prefix="svc-bench-cluster-") as d:
        root = Path(d)
        model, label = benchmark_model(args.model)
        model_ref = args.model
        if model_ref is None:
            if label == "demo":
                model_ref = "demo"
            else:
                from svc_dsp.models.hpn import save_model_folder

                save_model_folder(model, root / "model")
                model_ref = str(root / "model")
        inp = root / "in"
        inp.mkdir()
        for k in range(args.files):
            sf.write(inp / f"stem{k:03d}.wav", vocal(sr, args.seconds, seed=k), sr, subtype="PCM_16")
        pairs_for = lambda out: [(f, out / f.name) for f in sorted(inp.iterdir())]  # noqa: E731
        audio_s = args.files * args.seconds
        print(machine_line())
        print(f"model: {label}; {args.files} files x {args.seconds:g} s mono 44.1 kHz PCM_16 "
              f"({audio_s:g} s of audio); 1 torch thread per worker; median of {args.repeats}")
        print(f"{'path':<30} {'wall s':>8} {'files/s':>8} {'audio s/s':>10} {'failed':>6}")

        def row(name: str, wall: float, failed: int) -> None:
            print(f"{name:<30} {wall:>8.2f} {args.files / wall:>8.2f} {audio_s / wall:>10.1f} {failed:>6}", flush=True)

        for n in counts:
            wall, failed = _timed(lambda out: render_batch(pairs_for(out), model_ref, {}, jobs=n, threads=1),
                                  root, args.repeats)
            row(f"--jobs {n}", wall, failed)
        for n in counts:
            t0 = time.perf_counter()
            with connect(f"local:{n}") as client:
                out = root / f"first-{n}"
                first = render_cluster(pairs_for(out), model_ref, {}, cluster=f"local:{n}", client=client)
                cold = time.perf_counter() - t0
                shutil.rmtree(out, ignore_errors=True)
                # every worker has the model now? the first batch may have used only some of them
                client.wait_for_workers(n, timeout=120)
                wall, failed = _timed(lambda out: render_cluster(pairs_for(out), model_ref, {},
                                                                 cluster=f"local:{n}", client=client),
                                      root, args.repeats)
            row(f"cluster local:{n} (warm)", wall, failed)
            row(f"cluster local:{n} (start+1st)", cold, sum(r.status != "ok" for r in first))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"load average at the end: {load:.2f} ({os.cpu_count()} CPUs shared with whatever else runs)")
    return 0
