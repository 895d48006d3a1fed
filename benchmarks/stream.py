"""Streaming latency and real-time factor.

    python -m benchmarks stream [--model DIR|NAME] [--rate 48000] [--seconds 10] [--backends torch,onnx,numpy]

Default model: the low-latency (stateful) catalog voice ('demo-live', else 'demo').

Latency: reported ``latency_samples``; measured (a) as the lag maximising the
cross-correlation between the streamed output and the offline (latency-free) render,
(b) as the onset delay of a note (envelope crossing 10 % of its maximum) relative to the
input onset. RTF: processing seconds / audio seconds per block size and backend on one
thread (median of --repeats runs).

Where a hop's time goes (block 256, one hop per step, stateful voices with a numpy runtime):
the engine's CPU time split into the voice's network step (``process_hops``, timed inside the
engine) and everything else (resampling, F0, levels, parameters); and the floor of the network
step's weight traffic: the runtime's weight matrices (``NumpyHpnModel.weight_matrices``), a
row vector through each in hop order and nothing else, per hop.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def _stream(sc, x, block):
    out = np.empty_like(x)
    for i in range(0, x.shape[0], block):
        out[i:i + block] = sc.process(x[i:i + block])
    return out


def _rtf(sc, x, block: int, repeats: int) -> tuple[float, float]:
    """Median (wall-clock RTF, process-CPU-time RTF) of streaming ``x`` through ``sc`` in
    ``block``-sample blocks, after a 1 s warm-up."""
    sr = sc.sample_rate
    _stream(sc, x[: sr], block)
    times, cpus = [], []
    for _ in range(repeats):
        sc.reset()
        t0, c0 = time.perf_counter(), time.process_time()
        _stream(sc, x, block)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    secs = x.shape[0] / sr
    return statistics.median(times) / secs, statistics.median(cpus) / secs


def _weight_floor(runtime, hops: int = 2000) -> tuple[float, float]:
    """(median seconds per hop, MB per hop) of multiplying one frame by each weight matrix of
    ``runtime`` in hop order, nothing else; the first 10 % of hops are not counted."""
    mats = runtime.weight_matrices()
    rows = [np.ones((1, w.shape[0]), np.float32) for w in mats]
    per_hop = []
    for _ in range(hops):
        t0 = time.perf_counter()
        for r, w in zip(rows, mats):
            r @ w
        per_hop.append(time.perf_counter() - t0)
    return statistics.median(per_hop[hops // 10:]), sum(w.nbytes for w in mats) / 1e6


def hop_costs(model, sr: int, x: np.ndarray, repeats: int) -> list[str]:
    """Lines of the 'where a hop's time goes' table (block 256, hops_per_step 1, CPU time)."""
    from svc_dsp.engine.streaming import StreamingConverter
    from svc_dsp.runtime.numpy_hpn import NumpyHpnModel

    hop_s = model.hop_size / model.sample_rate
    lines = [f"where a hop's time goes: block 256, one hop per step, {hop_s * 1000:.2f} ms hops; RTF in CPU time "
             f"(the 0.2 target leaves {0.2 * hop_s * 1000:.2f} ms per hop for everything)",
             f"{'backend':<8}{'engine':>9}{'network step':>14}{'the rest':>10}"]
    for backend in ("numpy", "onnx"):
        sc = StreamingConverter(model, sr, 256, backend=backend)
        rt = sc.stage.core.model
        spent = [0.0]
        step = rt.process_hops

        def timed(*a, **k):
            c0 = time.process_time()
            try:
                return step(*a, **k)
            finally:
                spent[0] += time.process_time() - c0

        rt.process_hops = timed
        _stream(sc, x[: sr], 256)  # warm-up, not counted
        runs = []
        for _ in range(repeats):
            sc.reset()
            spent[0] = 0.0
            c0 = time.process_time()
            _stream(sc, x, 256)
            runs.append(((time.process_time() - c0) * sr / x.shape[0], spent[0] * sr / x.shape[0]))
        total, net = sorted(runs)[len(runs) // 2]  # the run of median total time, split as it was
        lines.append(f"{backend:<8}{total:>9.3f}{net:>14.3f}{total - net:>10.3f}")
    floor, mb = _weight_floor(NumpyHpnModel(model))
    lines.append(f"weight floor: {mb:.2f} MB of float32 weights per hop, {floor * 1000:.3f} ms per hop alone "
                 f"({mb / 1000 / floor:.1f} GB/s) = RTF {floor / hop_s:.3f} before any other work")
    return lines


def _live_voice() -> str | None:
    """The catalog's low-latency (stateful) voice: 'demo-live' when the catalog has it (the
    default voice 'demo' may then be a windowed one), else 'demo' if it is stateful; None lets
    :func:`benchmarks.common.benchmark_model` fall back to a random-weight model."""
    from svc_dsp.errors import SvcError
    from svc_dsp.models.catalog import load_model

    for name in ("demo-live", "demo"):
        try:
            if load_model(name).regime == "stateful":
                return name
        except SvcError:
            continue
    return None


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks stream")
    ap.add_argument("--model")
    ap.add_argument("--rate", type=int, default=48000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--blocks", default="64,128,256,512,1024")
    ap.add_argument("--backends", default="torch,onnx,numpy")
    args = ap.parse_args(argv)

    import torch

    from benchmarks.common import benchmark_model, machine_line
    from benchmarks.signals import vocal
    from svc_dsp.engine.converter import Converter
    from svc_dsp.engine.streaming import StreamingConverter

    torch.set_num_threads(1)
    model, label = benchmark_model(args.model or _live_voice())
    sr = args.rate
    print(machine_line() + "; one thread")
    print(f"model: {label}; host rate {sr} Hz; model rate {model.sample_rate} Hz")

    sc = StreamingConverter(model, sr, 1024)
    L = sc.latency_samples
    x = vocal(sr, 3.0, seed=1)
    off = Converter(model).convert(x, sr)
    y = _stream(sc, np.concatenate([x, np.zeros(L, np.float32)]), 256)
    lags = np.arange(0, 2 * L + 1)
    xc = [float(np.dot(y[lag:lag + off.shape[0] - 2 * L], off[: off.shape[0] - 2 * L])) for lag in lags]
    lag_xc = int(lags[int(np.argmax(xc))])
    onset_x = np.zeros(sr, np.float32)
    t = np.arange(sr // 2) / sr
    onset_x[sr // 2:] = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 440 * t))
    sc.reset()
    yo = _stream(sc, onset_x, 256)
    env = np.convolve(np.abs(yo), np.ones(48) / 48, mode="same")
    onset = int(np.argmax(env > 0.1 * env.max())) - sr // 2
    ms = 1000.0 / sr
    print(f"latency reported: {L} samples = {L * ms:.2f} ms")
    print(f"latency measured (cross-correlation with the offline render): {lag_xc} samples = {lag_xc * ms:.2f} ms")
    print(f"onset delay of a note (input onset -> output envelope at 10 %): {onset} samples = {onset * ms:.2f} ms")

    x = vocal(sr, args.seconds, seed=2)
    print(f"\nreal-time factor, {args.seconds:.0f} s vocal, median of {args.repeats} (lower is better; 1.0 = real time)")
    print("G = model hops computed per engine step (hops_per_step); latency is per G; each cell: wall-clock RTF / "
          "RTF in CPU time of this process (on a shared machine the wall clock also counts waiting for a core)")
    blocks = [int(b) for b in args.blocks.split(",")]
    print(f"{'backend':<8}{'G':>3}{'latency':>10}" + "".join(f"{b:>14}" for b in blocks))
    for backend, g in [(b, g) for b in args.backends.split(",") for g in (1, 2)]:
        lat = StreamingConverter(model, sr, 64, hops_per_step=g).latency_samples
        row = f"{backend:<8}{g:>3}{lat * ms:>8.2f}ms"
        for b in blocks:
            wall, cpu = _rtf(StreamingConverter(model, sr, b, backend=backend, hops_per_step=g), x, b, args.repeats)
            cell = f"{wall:.3f}/{cpu:.3f}"
            row += f"{cell:>14}"
        print(row, flush=True)
    if model.regime == "stateful" and hasattr(model, "process_hops") and model.family == "hpn":
        print()
        for line in hop_costs(model, sr, x, args.repeats):
            print(line, flush=True)
    # what a user gets without choosing: StreamingConverter(model, rate, 256)
    sc = StreamingConverter(model, sr, 256)
    wall, cpu = _rtf(sc, x, 256, args.repeats)
    # on a shared machine the wall clock also counts time spent waiting for a core; the
    # process's CPU time does not (it still includes slowdowns from sharing caches and cores)
    print(f"defaults, StreamingConverter(model, {sr}, 256): backend {sc.backend}, hops_per_step {sc.hops_per_step}, "
          f"latency {sc.latency_samples * ms:.2f} ms, RTF {wall:.3f} at block 256 "
          f"(CPU time of this process: RTF {cpu:.3f}; load average "
          f"{os.getloadavg()[0]:.2f} now)")
    return 0
