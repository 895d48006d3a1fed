"""python -m benchmarks whisper: speed of a 'whisper' content encoder on one thread, and its ONNX parity.

Prints, per input length, the median real-time factor (encode seconds / audio seconds) for the
torch graph in float32 and bfloat16 and for onnxruntime, and the largest difference between the
ONNX and torch units. Lengths above 30 s take the windowed path (30 s windows, 2 s margins, 2 s
cross-fades).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_rtf(fn, seconds: float, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) / seconds


def main(argv: list[str] | None = None) -> int:
    import torch

    from benchmarks.common import machine_line
    from benchmarks.signals import vocal
    from svc_dsp.models.catalog import find_in_catalog
    from svc_dsp.models.encoders.registry import load_content_encoder

    ap = argparse.ArgumentParser(prog="python -m benchmarks whisper", description=__doc__)
    ap.add_argument("--encoder", default="whisper-base-l4", help="catalog name or folder (default whisper-base-l4)")
    ap.add_argument("--seconds", default="5,30,60", help="input lengths in seconds, comma-separated")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-bf16", action="store_true", help="skip bfloat16 (slow on CPUs without bf16 units)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    folder = Path(args.encoder) if Path(args.encoder).is_dir() else find_in_catalog("encoders", args.encoder)
    enc = load_content_encoder(folder)
    print(machine_line())
    print(f"encoder {enc.describe()}, {args.threads} thread(s), median of {args.repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = None
        try:
            onnx_path = enc.export_onnx(Path(tmp) / "whisper.onnx")  # type: ignore[attr-defined]
        except Exception as e:  # onnx missing or export failure: report, keep the torch numbers
            print(f"ONNX export failed: {e}")
        print(f"{'seconds':>8} {'frames':>7} {'rtf fp32':>9} {'rtf bf16':>9} {'rtf onnx':>9} {'onnx max|d|':>12}")
        for sec in [float(s) for s in args.seconds.split(",") if s]:
            x = vocal(16000, sec, seed=1)
            enc.set_dtype("float32")  # type: ignore[attr-defined]
            ref = enc.encode(x, 16000)
            fp32 = _median_rtf(lambda: enc.encode(x, 16000), sec, args.repeats)
            bf16 = float("nan")
            if not args.no_bf16:
                enc.set_dtype("bfloat16")  # type: ignore[attr-defined]
                bf16 = _median_rtf(lambda: enc.encode(x, 16000), sec, args.repeats)
                enc.set_dtype("float32")  # type: ignore[attr-defined]
            ort_rtf, diff = float("nan"), float("nan")
            if onnx_path is not None:
                enc.use_onnx(onnx_path)  # type: ignore[attr-defined]
                got = enc.encode(x, 16000)
                diff = float(np.abs(got - ref).max())
                ort_rtf = _median_rtf(lambda: enc.encode(x, 16000), sec, args.repeats)
                enc.use_onnx(None)  # type: ignore[attr-defined]
            print(f"{sec:8.1f} {ref.shape[0]:7d} {fp32:9.4f} {bf16:9.4f} {ort_rtf:9.4f} {diff:12.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
