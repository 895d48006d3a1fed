"""Training throughput on this CPU, and the demo recipe's wall time.

    python -m benchmarks train [--minutes 1.5] [--steps 60] [--threads 1]

Generates --minutes of sung audio with the demo recipe's own generator (festival slt,
re-sung with WORLD), runs prepare -> features (yin F0) -> fit for --steps steps with the
demo architecture (batch 8 x 1 s) and prints steps/s and audio-seconds/s of fit. The demo
recipe's wall time is read from its log (out/demo_voice/recipe.log) when it was run here.
"""
from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks train")
    ap.add_argument("--minutes", type=float, default=1.5)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)

    import torch

    from benchmarks.common import machine_line
    from training.features import extract_features
    from training.fit import fit
    from training.prepare import prepare
    from training.recipes.demo_voice import ROOT, generate

    torch.set_num_threads(args.threads)
    print(machine_line() + f"; {args.threads} torch thread(s)")
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t0 = time.perf_counter()
        secs = generate(d / "raw", args.minutes, seed=3, jobs=2, voice="cmu_us_slt_arctic_hts")
        t1 = time.perf_counter()
        prepare(d / "raw", d / "prep", sample_rate=24000)
        t2 = time.perf_counter()
        extract_features(d / "prep", encoder_folder_or_name="svc-phone-v1", f0_method="yin", jobs=1)
        t3 = time.perf_counter()
        cfg = {"prep_dir": str(d / "prep"), "max_steps": args.steps, "batch_size": 8, "segment_seconds": 1.0,
               "learning_rate": 2e-3, "log_interval": max(1, args.steps // 3), "eval_interval": args.steps,
               "keep_ckpts": 1, "seed": 1}
        (d / "train.json").write_text(json.dumps(cfg))
        t4 = time.perf_counter()
        res = fit(d / "run", d / "train.json", echo=False)
        t5 = time.perf_counter()
    print(f"data: {secs / 60:.1f} min generated in {t1 - t0:.0f} s; prepare {t2 - t1:.1f} s; "
          f"features (svc-phone-v1 units, yin F0) {t3 - t2:.1f} s")
    print(f"fit: {res.step} steps in {t5 - t4:.1f} s wall (incl. validation and one checkpoint): "
          f"{res.steps_per_s:.2f} steps/s, {res.audio_s_per_s:.1f} audio-seconds/s (batch 8 x 1 s)")
    log = ROOT / "out" / "demo_voice" / "recipe.log"
    if log.is_file():
        m = re.findall(r"total (\d+) s", log.read_text())
        print(f"demo recipe wall time (from {log}): {m[-1] if m else '?'} s")
    else:
        print("demo recipe wall time: not run on this machine (python -m training.recipes.demo_voice)")
    return 0
