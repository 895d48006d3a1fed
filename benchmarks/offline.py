"""Offline real-time factor per F0 tracker (1 and 2 threads) and peak memory for a long file.

    python -m benchmarks offline [--model DIR|NAME] [--seconds 60] [--long-minutes 10]

RTF = processing seconds / audio seconds (lower is better; 0.05 = 20x faster than real time).
Each figure is the median of --repeats runs. Peak memory is the max RSS of a separate
`svc-host render` process converting a --long-minutes mono 44.1 kHz WAV.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks offline")
    ap.add_argument("--model")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--long-minutes", type=float, default=10.0)
    ap.add_argument("--trackers", default="yin,dio,harvest")
    args = ap.parse_args(argv)

    import torch

    from benchmarks.common import benchmark_model, machine_line
    from benchmarks.signals import vocal
    from svc_dsp.engine.converter import Converter

    model, label = benchmark_model(args.model)
    sr = 44100
    x = vocal(sr, args.seconds)
    print(machine_line())
    print(f"model: {label}; input: {args.seconds:.0f} s synthetic vocal at {sr} Hz mono; median of {args.repeats}")
    print(f"{'f0 tracker':<10} {'threads':>7} {'RTF':>8} {'x real time':>12}")
    for tr in args.trackers.split(","):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            conv = Converter(model, f0_method=tr)
            conv.convert(x[: sr], sr)  # warm-up
            times = []
            reps = args.repeats if tr != "harvest" else max(1, args.repeats // 2)
            for _ in range(reps):
                t0 = time.perf_counter()
                conv.convert(x, sr)
                times.append(time.perf_counter() - t0)
            rtf = statistics.median(times) / args.seconds
            print(f"{tr:<10} {threads:>7} {rtf:>8.4f} {1 / rtf:>11.1f}x", flush=True)

    if args.long_minutes > 0:
        import soundfile as sf

        with tempfile.TemporaryDirectory() as d:
            src = Path(d) / "long.wav"
            n = int(args.long_minutes * 60 * sr)
            with sf.SoundFile(src, "w", sr, 1, subtype="PCM_16") as f:
                for s in range(0, n, sr * 60):
                    f.write(vocal(sr, min(60, (n - s) / sr), seed=s))
            # VmHWM (peak RSS since exec); ru_maxrss would include the parent's memory at fork time
            code = ("import sys; from host_bridge.cli import main; rc = main(sys.argv[1:]); "
                    "print('MAXRSS', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); "
                    "sys.exit(rc)")
            cmd = [sys.executable, "-c", code, "render", str(src), "-o", str(Path(d) / "out"), "-q"]
            if args.model:
                cmd += ["--model", args.model]
            elif label != "demo":
                from svc_dsp.models.hpn import save_model_folder

                save_model_folder(model, Path(d) / "m")
                cmd += ["--model", str(Path(d) / "m")]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, check=True, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            peak_kb = int(r.stdout.split("MAXRSS")[-1].split()[0])
            print(f"long file: {args.long_minutes:.0f} min mono 44.1 kHz PCM_16 ({n * 2 / 1e6:.0f} MB on disk): "
                  f"peak RSS of the render process {peak_kb / 1024:.0f} MB, wall {wall:.1f} s "
                  f"(svc-host render, preset defaults: yin, 1 thread)")
    return 0
