"""Window geometry of a windowed voice: latency, real-time factor and agreement with the offline render.

    python -m benchmarks windowed [--model demo-whisper] [--rate 48000] [--block 256] [--seconds 6]
        [--geometries 0.12/1.0/0.06,0.16/0.8/0.06,...]

Each geometry is step/context/lookahead in seconds (crossfade 30 ms, search 20 ms or one period of
the voice's lowest note). Per geometry, on one thread: the reported latency; RTF (wall clock and
the process's CPU time, medians of ``--repeats``); and how close the stream comes to the offline
render of the same voice: the median absolute difference of 40 ms frame levels (dB) and the mean
cosine of their log-magnitude spectra, over frames where the offline render sounds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _stream(sc, x: np.ndarray, block: int) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(0, x.shape[0], block):
        out[i:i + block] = sc.process(x[i:i + block])
    return out


def agreement(y: np.ndarray, ref: np.ndarray, sr: int) -> tuple[float, float]:
    """(median |level difference| dB, mean spectral cosine) over 40 ms frames where ``ref`` sounds."""
    f = sr // 25
    n = min(y.shape[0], ref.shape[0]) // f * f
    a, b = y[:n].reshape(-1, f).astype(np.float64), ref[:n].reshape(-1, f).astype(np.float64)
    la, lb = 10 * np.log10(np.mean(a ** 2, 1) + 1e-12), 10 * np.log10(np.mean(b ** 2, 1) + 1e-12)
    on = lb > lb.max() - 30.0
    w = np.hanning(f)
    sa = np.log1p(np.abs(np.fft.rfft(a * w, axis=1)) * 100)
    sb = np.log1p(np.abs(np.fft.rfft(b * w, axis=1)) * 100)
    cos = np.sum(sa * sb, 1) / (np.linalg.norm(sa, axis=1) * np.linalg.norm(sb, axis=1) + 1e-12)
    return float(np.median(np.abs(la - lb)[on])), float(np.mean(cos[on]))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks windowed")
    ap.add_argument("--model", default="demo-whisper")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--geometries", default="voice",
                    help="comma-separated step/context/lookahead seconds; 'voice' = the voice's own (default)")
    args = ap.parse_args(argv)

    import torch

    from benchmarks.common import machine_line
    from benchmarks.signals import vocal
    from svc_dsp.engine.converter import Converter
    from svc_dsp.engine.streaming import StreamingConverter
    from svc_dsp.engine.windowed import WindowSettings
    from svc_dsp.models.catalog import load_model

    torch.set_num_threads(1)
    model = load_model(args.model)
    if model.regime != "windowed":
        print(f"model '{args.model}' streams in the {model.regime} regime; this benchmark is for windowed voices")
        return 2
    sr, block = args.rate, args.block
    print(machine_line() + "; one thread")
    print(f"model: {args.model}; host rate {sr} Hz; block {block}; {args.seconds:g} s vocal")
    x = vocal(sr, args.seconds, seed=2)
    ref = Converter(model, f0_method="yin").convert(x, sr)
    ref = np.asarray(ref).reshape(-1)
    voice = model.window_settings() if hasattr(model, "window_settings") else None
    geos = []
    for g in args.geometries.split(","):
        if g == "voice":
            geos.append(WindowSettings(**voice) if voice else WindowSettings())
        else:
            step, ctx, ahead = (float(v) for v in g.split("/"))
            geos.append(WindowSettings(step=step, context=ctx, lookahead=ahead))
    print(f"{'step':>6}{'context':>8}{'ahead':>7}{'latency ms':>12}{'RTF wall':>10}{'RTF cpu':>9}"
          f"{'|dB| med':>10}{'spec cos':>10}")
    for w in geos:
        sc = StreamingConverter(model, sr, block, window=w, f0_method="yin")
        L = sc.latency_samples
        wall, cpu = [], []
        for _ in range(args.repeats):
            sc.reset()
            t0, c0 = time.perf_counter(), time.process_time()
            y = _stream(sc, np.concatenate([x, np.zeros(L, np.float32)]), block)[L:]
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        secs = (x.shape[0] + L) / sr
        db, cos = agreement(y, ref, sr)
        print(f"{w.step:>6.3f}{w.context:>8.2f}{w.lookahead:>7.3f}{1000 * L / sr:>12.1f}"
              f"{statistics.median(wall) / secs:>10.3f}{statistics.median(cpu) / secs:>9.3f}{db:>10.2f}{cos:>10.3f}",
              flush=True)
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0
