"""Offline speed of imported so-vits-svc voices: default-size (52 M) vec768l12 44.1 kHz voice with
random weights + a default-size random ContentVec (HuBERT-base), torch and onnxruntime.

    python -m benchmarks sovits [--seconds 10] [--threads 1 2] [--repeats 2]

RTF = processing seconds / audio seconds (lower is better). Stages: content encoder (16 kHz
ContentVec, layer 12), generator (so-vits SynthesizerTrn inference at 44.1 kHz), and the whole
offline path (F0 + slicing + encoder + generator + dynamics) through Converter.
Streaming: the windowed regime's reported latency and RTF for two block sizes.
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


def _time(fn: Callable[[], Any], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv: list[str]) -> int:
    import torch

    from svc_dsp.engine.converter import Converter
    from svc_dsp.models.sovits.frames import stretch_units
    from svc_dsp.runtime.onnx_sovits import OnnxSovitsRunner, export_sovits_onnx, parity

    ap = argparse.ArgumentParser(prog="python -m benchmarks sovits")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(max(a.threads))
    t0 = time.perf_counter()
    model = _random_voice()
    n_params = sum(p.numel() for p in model.net.parameters())
    n_enc = sum(p.numel() for p in model.encoder.net.parameters())
    print(f"so-vits benchmark on {platform.processor() or platform.machine()}, torch {torch.__version__}; voice "
          f"{n_params / 1e6:.1f} M inference params, ContentVec {n_enc / 1e6:.1f} M; built in "
          f"{time.perf_counter() - t0:.1f} s; audio {a.seconds:.0f} s at 44.1 kHz")
    x = _signal(a.seconds)
    sr, hop = 44100, 512
    t = x.shape[0] // hop
    from svc_dsp.audio.resample import resample
    wav16 = resample(x, sr, 16000)
    units_raw = model.encoder.encode(wav16, 16000)
    units = stretch_units(units_raw, t, "nearest")
    f0, uv = np.full(t, 220.0, np.float32), np.ones(t, np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        path = export_sovits_onnx(model, Path(tmp) / "voice.onnx")
        export_s = time.perf_counter() - t1
        err = parity(model, path, n_frames=200)
        runner = OnnxSovitsRunner(model, path)
        rows = []
        for th in a.threads:
            torch.set_num_threads(th)
            rows.append(("content encoder (ContentVec l12)", "torch", th,
                         _time(lambda: model.encoder.encode(wav16, 16000), a.repeats)))
            rows.append(("generator (SynthesizerTrn)", "torch", th,
                         _time(lambda: model.synthesize(units, f0, uv, 0), a.repeats)))
            import onnxruntime as ort
            so = ort.SessionOptions()
            so.intra_op_num_threads = th
            runner.sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            rows.append(("generator (SynthesizerTrn)", "onnxruntime", th,
                         _time(lambda: runner.synthesize(units_raw, f0, uv, 0), a.repeats)))
            for method in ("dio", "harvest"):
                conv = Converter(model, f0_method=method)
                rows.append((f"whole offline path, f0 {method}", "torch", th, _time(lambda: conv.convert(x, sr), 1)))
    print(f"ONNX export {export_s:.1f} s; torch/onnxruntime max |diff| on 200 frames: {err:.1e}")
    print(f"{'stage':36s} {'backend':12s} {'threads':>7s} {'seconds':>8s} {'RTF':>7s}")
    for stage, backend, th, sec in rows:
        print(f"{stage:36s} {backend:12s} {th:7d} {sec:8.2f} {sec / a.seconds:7.3f}")
    _streaming_rows(model, x, sr, a.seconds)
    return 0


def _streaming_rows(model: Any, x: np.ndarray, sr: int, seconds: float) -> None:
    """Windowed-regime streaming: reported latency and real-time factor per block size."""
    import torch

    from svc_dsp.engine.streaming import StreamingConverter

    torch.set_num_threads(1)
    print(f"streaming (windowed regime, SOLA), host {sr} Hz, one thread, torch:")
    for block in (256, 1024):
        sc = StreamingConverter(model, sr, block)
        t0 = time.perf_counter()
        for i in range(0, x.shape[0], block):
            sc.process(x[i:i + block])
        rtf = (time.perf_counter() - t0) / seconds
        st = sc.stage
        print(f"  block {block:5d}: latency {sc.latency_samples} samples = {1000 * sc.latency_samples / sr:.1f} ms "
              f"(window {st.window} / step {st.step} model samples); RTF {rtf:.2f}"
              f"{'  (slower than real time: not usable live on this CPU)' if rtf > 1 else ''}")
