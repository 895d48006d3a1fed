"""Speed of imported so-vits-svc voices: default-size (52 M) vec768l12 44.1 kHz 4.1 voice with
random weights + a default-size random ContentVec (HuBERT-base).

    python -m benchmarks sovits [--seconds 5] [--threads 1] [--repeats 3] [--blocks 256 1024] [--streaming-only]

RTF = processing seconds / audio seconds (lower is better), median of --repeats. Side by side in
one run, on the same features: the exact path (so-vits SynthesizerTrn inference in fp32 torch,
``synthesize(exact=True)``, which times like so-vits-svc's own ``infer``), the fast path (the
default: FFT decoder), and the whole graph in onnxruntime (ORT_ENABLE_ALL); their largest
difference to the exact path; the content encoder alone; the whole offline path (F0 + slicing +
encoder + generator + dynamics) through Converter, fast and exact. Streaming: the windowed
regime's reported latency and RTF per block size (fast path).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _random_voice(seed: int = 0) -> Any:
    import torch

    from svc_dsp.models.encoders.hubert import HubertEncoder, expected_shapes
    from svc_dsp.models.sovits.layout import MODEL_DEFAULTS, inference_shapes
    from svc_dsp.models.sovits.model import SovitsModel

    g = torch.Generator().manual_seed(seed)

    def rand(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
        out = {}
        for k, s in shapes.items():
            if k.endswith((".gamma", "norm.weight", ".2.weight")) and len(s) == 1:
                out[k] = np.ones(s, np.float32)
            elif k.endswith((".beta", ".bias")):
                out[k] = np.zeros(s, np.float32)
            elif k.endswith(".weight_g"):
                out[k] = np.full(s, 0.5, np.float32)
            else:
                fan = int(np.prod(s[1:])) if len(s) > 1 else 1
                out[k] = (torch.randn(s, generator=g) / max(fan, 1) ** 0.5).numpy()
        return out

    enc_cfg = {"family": "content-encoder", "kind": "hubert", "name": "vec768l12", "output_layer": 12,
               "final_proj": False, "dim": 768}
    enc = HubertEncoder(enc_cfg, rand(expected_shapes(12, False)))
    m = dict(MODEL_DEFAULTS, speech_encoder="vec768l12", n_speakers=1)
    cfg = {"family": "sovits", "name": "random-default-vec768l12", "sample_rate": 44100, "hop_size": 512,
           "speakers": ["speaker0"], "speaker_ids": [0], "f0_range": [50.0, 1100.0],
           "content_encoder": {"name": "vec768l12", "dim": 768},
           "sovits": {"model": m, "unit_interpolate_mode": "nearest", "speech_encoder": "vec768l12"}}
    return SovitsModel(cfg, rand(inference_shapes(m)), enc)


def _signal(seconds: float, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    f = 220.0 * 2 ** (np.floor(t * 2) % 5 / 12)  # a note every 0.5 s
    x = 0.3 * np.sin(2 * np.pi * np.cumsum(f) / sr) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return x.astype(np.float32)


def _time(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median wall-clock and median process CPU seconds of ``repeats`` calls. On a shared
    machine the wall clock also counts waiting for a core; the CPU time does not."""
    ts, cs = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), statistics.median(cs)


def main(argv: list[str]) -> int:
    import torch

    from benchmarks.common import machine_line
    from svc_dsp.audio.resample import resample
    from svc_dsp.engine.converter import Converter
    from svc_dsp.models.sovits.frames import stretch_units
    from svc_dsp.runtime.onnx_sovits import OnnxSovitsRunner, export_sovits_onnx

    ap = argparse.ArgumentParser(prog="python -m benchmarks sovits")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--blocks", type=int, nargs="*", default=[256, 1024], help="streaming block sizes (none: skip)")
    ap.add_argument("--no-onnx", action="store_true", help="skip the onnxruntime row (its export takes a while)")
    ap.add_argument("--streaming-only", action="store_true", help="only the streaming rows")
    a = ap.parse_args(argv)
    torch.set_num_threads(max(a.threads))
    t0 = time.perf_counter()
    model = _random_voice()
    n_params = sum(p.numel() for p in model.net.parameters())
    n_enc = sum(p.numel() for p in model.encoder.net.parameters())
    print(machine_line())
    print(f"so-vits benchmark on {platform.processor() or platform.machine()}; voice {n_params / 1e6:.1f} M inference "
          f"params (4.1 defaults), ContentVec {n_enc / 1e6:.1f} M; built in {time.perf_counter() - t0:.1f} s; audio "
          f"{a.seconds:g} s at 44.1 kHz; fast decoder holds {model.fast_decoder.extra_bytes / 1e6:.0f} MB of "
          f"transformed kernels")
    x = _signal(a.seconds)
    sr, hop = 44100, 512
    t = x.shape[0] // hop
    wav16 = resample(x, sr, 16000)
    units_raw = model.encoder.encode(wav16, 16000)
    units = stretch_units(units_raw, t, "nearest")
    f0 = (220.0 * 2 ** (np.floor(np.arange(t) * hop / sr * 2) % 5 / 12)).astype(np.float32)
    uv = np.ones(t, np.float32)
    if a.streaming_only:
        _streaming_rows(model, x, sr, a.seconds, a.blocks or [1024])
        return 0
    print("RTF: wall clock; CPU: the process's CPU time (what counts on a shared machine); x exact: ratio of CPU times")
    print(f"{'stage':44s} {'backend':12s} {'threads':>7s} {'RTF':>7s} {'CPU RTF':>8s} {'x exact':>8s}  max |y - exact|")
    base: dict[int, float] = {}

    def row(stage: str, backend: str, th: int, t: tuple[float, float], diff: float | None = None) -> None:
        wall, cpu = t
        if stage.startswith("generator, exact"):
            base[th] = cpu
        ratio = f"{base[th] / cpu:8.2f}" if stage.startswith("generator") and th in base else " " * 8
        d = f"  {diff:.1e}" if diff is not None else ""
        print(f"{stage:44s} {backend:12s} {th:7d} {wall / a.seconds:7.3f} {cpu / a.seconds:8.3f} {ratio}{d}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        runner = None
        if not a.no_onnx:
            t1 = time.perf_counter()
            path = export_sovits_onnx(model, Path(tmp) / "voice.onnx")
            print(f"ONNX export (with its parity check) {time.perf_counter() - t1:.1f} s")
            runner = OnnxSovitsRunner(model, path)
        for th in a.threads:
            torch.set_num_threads(th)
            exact = model.synthesize(units, f0, uv, 0, exact=True)
            row("generator, exact (fp32 torch)", "torch", th,
                _time(lambda: model.synthesize(units, f0, uv, 0, exact=True), a.repeats))
            fast = model.synthesize(units, f0, uv, 0)
            row("generator, fast (default)", "torch+FFT", th, _time(lambda: model.synthesize(units, f0, uv, 0), a.repeats),
                float(np.max(np.abs(fast - exact))))
            if runner is not None:
                import onnxruntime as ort

                so = ort.SessionOptions()
                so.intra_op_num_threads, so.inter_op_num_threads = th, 1
                so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                runner.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                got = runner.synthesize(units_raw, f0, uv, 0)
                row("generator, whole graph", "onnxruntime", th,
                    _time(lambda: runner.synthesize(units_raw, f0, uv, 0), a.repeats), float(np.max(np.abs(got - exact))))
            row("content encoder (ContentVec l12)", "torch", th, _time(lambda: model.encoder.encode(wav16, 16000), a.repeats))
            for ex in (False, True):
                model.exact = ex
                conv = Converter(model, f0_method="dio")
                row(f"whole offline path (f0 dio), {'exact' if ex else 'fast'}", "torch", th,
                    _time(lambda: conv.convert(x, sr), 1))
            model.exact = False
    if a.blocks:
        _streaming_rows(model, x, sr, a.seconds, a.blocks)
    return 0


def _streaming_rows(model: Any, x: np.ndarray, sr: int, seconds: float, blocks: list[int]) -> None:
    """Windowed-regime streaming: reported latency and real-time factor per block size."""
    import torch

    from svc_dsp.engine.streaming import StreamingConverter

    torch.set_num_threads(1)
    print(f"streaming (windowed regime, SOLA), host {sr} Hz, one thread, fast path, CPU only; 'kept frames': the "
          f"decoder runs on the part of each window the stream keeps (the default), 'whole window': on all of it; "
          f"max |kept - whole| over the output:")
    for block in blocks:
        outs = {}
        for keep in (False, True):
            sc = StreamingConverter(model, sr, block)
            st = getattr(sc.stage, "core", sc.stage)  # the windowed stage inside the engine's model stage
            st._keep_kw = keep and st._keep_kw
            t0, c0 = time.perf_counter(), time.process_time()
            outs[keep] = np.concatenate([sc.process(x[i:i + block]) for i in range(0, x.shape[0], block)])
            rtf = (time.perf_counter() - t0) / seconds
            cpu = (time.process_time() - c0) / seconds
            diff = f"; max diff {np.max(np.abs(outs[True] - outs[False])):.1e}" if keep else ""
            print(f"  block {block:5d}, {'kept frames ' if keep else 'whole window'}: latency {sc.latency_samples} "
                  f"samples = {1000 * sc.latency_samples / sr:.1f} ms (window {st.window} / step {st.step} model "
                  f"samples); RTF {rtf:.2f} (CPU {cpu:.2f}){diff}"
                  f"{'  (slower than real time: not usable live on this CPU)' if cpu > 1 else ''}", flush=True)
