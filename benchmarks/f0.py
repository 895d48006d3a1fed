"""F0 trackers on sung and spoken synthetic clips with known F0.

    python -m benchmarks f0 [--trackers yin,dio,...] [--clips 8] [--sr 24000 --hop 120] [--seed 11]

Clips: flite voices (awb, rms, slt, kal) speak sentences from the corpus tools; WORLD analyses
each (dio + stonemask + cheaptrick + d4c at 5 ms) and resynthesises it with a known F0: "sung"
replaces the voiced frames' F0 with a melody (the corpus's notes, glides and vibrato, centred on
the voice's median x 1.0 / 1.6), "spoken" keeps WORLD's own contour. That F0 (0 = unvoiced) is the
truth at 5 ms. The clips are resampled to ``--sr`` and every tracker runs through the engine's
interface (``track``, hop ``--hop``: 5 ms by default, so grid frame j is WORLD frame j + 1).

Columns, over all clips of a set: RPA = truth-voiced frames the tracker calls voiced within 50
cents; missed = truth-voiced frames called unvoiced; gross = truth-voiced frames called voiced
more than 600 cents off; false voicing = truth-unvoiced frames called voiced; RTF = tracking time
/ audio time (median over clips, one thread, weights loaded before timing); live RTF (streaming
trackers only) = time to push the clip at 48 kHz in 256-sample blocks through ``stream(48000, 256)``
/ audio time (median over clips); lookahead = the tracker's declared lookahead in ms.
"""
from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np

VOICES = ("awb", "rms", "slt", "kal")
DEFAULT_TRACKERS = ("yin", "dio", "harvest", "crepe-tiny", "crepe", "fcpe", "pesto", "crepe-tiny-live", "fcpe-live")
LIVE_SR, LIVE_BLOCK = 48000, 256
FP_MS = 5.0


def make_clips(n: int, seed: int, sung: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """n clips of (audio float32 at 16 kHz, true F0 per 5 ms WORLD frame)."""
    import subprocess

    from svc_dsp.features.f0_world import load_pyworld
    from training.corpus.synth_speech import SAMPLE_RATE, _melody, _read_wav, make_sentences

    pw = load_pyworld()
    sentences = make_sentences(n, seed=seed, min_words=5, max_words=9)
    rng = np.random.default_rng(seed)
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(sentences):
            voice = VOICES[i % len(VOICES)]
            wav = Path(tmp) / "x.wav"
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True, capture_output=True)
            x = _read_wav(wav).astype(np.float64)
            f0, t = pw.dio(x, SAMPLE_RATE, frame_period=FP_MS, f0_floor=60.0, f0_ceil=500.0)
            f0 = pw.stonemask(x, f0, t, SAMPLE_RATE)
            sp = pw.cheaptrick(x, f0, t, SAMPLE_RATE)
            ap = pw.d4c(x, f0, t, SAMPLE_RATE)
            voiced = f0 > 0
            if sung:
                med = float(np.median(f0[voiced])) if voiced.any() else 150.0
                scale = (1.0, 1.6)[i % 2]
                f0 = np.where(voiced, _melody(len(f0), FP_MS / 1000, med * scale, rng), 0.0)
            y = pw.synthesize(np.ascontiguousarray(f0), sp, ap, SAMPLE_RATE, FP_MS).astype(np.float32)
            y *= 0.5 / max(1e-6, float(np.abs(y).max()))
            out.append((y, f0))
    return out


def score(truth: np.ndarray, est: np.ndarray) -> dict[str, int]:
    n = min(truth.shape[0], est.shape[0])
    tr, es = truth[:n], est[:n].astype(np.float64)
    tv, ev = tr > 0, es > 0
    both = tv & ev
    cents = np.zeros(n)
    cents[both] = 1200 * np.abs(np.log2(es[both] / tr[both]))
    return {"voiced": int(tv.sum()), "unvoiced": int((~tv).sum()), "ok": int((both & (cents <= 50)).sum()),
            "missed": int((tv & ~ev).sum()), "gross": int((both & (cents > 600)).sum()),
            "false": int((~tv & ev).sum())}


def run(trackers: list[str], clips: list[tuple[np.ndarray, np.ndarray]], sr: int, hop: int) -> dict[str, dict]:
    import torch

    from svc_dsp.audio.resample import resample
    from svc_dsp.features import get_f0_tracker
    from svc_dsp.features.f0_weights import WeightsMissingError

    torch.set_num_threads(1)
    res = {}
    for name in trackers:
        tracker = get_f0_tracker(name)
        tot: dict[str, int] = {}
        rtfs, live = [], []
        try:
            if hasattr(tracker, "net"):
                tracker.net()            # load weights before timing
            for x16, f0 in clips:
                x = resample(x16, 16000, sr) if sr != 16000 else x16
                n_frames = -(-x.shape[0] // hop)
                t0 = time.perf_counter()
                est = tracker.track(x, sr, hop, n_frames)
                rtfs.append((time.perf_counter() - t0) / (x.shape[0] / sr))
                for k, v in score(f0[1:], est).items():
                    tot[k] = tot.get(k, 0) + v
                if tracker.streaming:
                    x48 = resample(x16, 16000, LIVE_SR)
                    st = tracker.stream(LIVE_SR, LIVE_BLOCK)
                    t0 = time.perf_counter()
                    for s in range(0, x48.shape[0], LIVE_BLOCK):
                        st.push(x48[s:s + LIVE_BLOCK])
                    live.append((time.perf_counter() - t0) / (x48.shape[0] / LIVE_SR))
        except WeightsMissingError as e:
            print(f"  {name}: skipped ({e})")
            continue
        tot["rtf"] = float(np.median(rtfs))
        tot["live"] = float(np.median(live)) if live else float("nan")
        tot["la"] = 1000 * tracker.lookahead_seconds if tracker.streaming else float("nan")
        res[name] = tot
    return res


def table(title: str, res: dict[str, dict]) -> str:
    lines = [title, f"{'tracker':<16} {'RPA 50c':>8} {'missed':>7} {'gross>600c':>10} {'false voicing':>13} {'RTF':>7} "
                    f"{'live RTF 48k/256':>16} {'lookahead':>9}"]
    for name, t in res.items():
        v, u = max(1, t["voiced"]), max(1, t["unvoiced"])
        live = "-" if math.isnan(t["live"]) else f"{t['live']:.3f}"
        la = "offline" if math.isnan(t["la"]) else f"{t['la']:.0f} ms"
        lines.append(f"{name:<16} {100 * t['ok'] / v:7.1f}% {100 * t['missed'] / v:6.1f}% {100 * t['gross'] / v:9.2f}% "
                     f"{100 * t['false'] / u:12.1f}% {t['rtf']:7.3f} {live:>16} {la:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from benchmarks.common import machine_line

    ap = argparse.ArgumentParser(prog="python -m benchmarks f0", description=__doc__.split("\n\n")[0])
    ap.add_argument("--trackers", default=",".join(DEFAULT_TRACKERS))
    ap.add_argument("--clips", type=int, default=8, help="clips per set (sung, spoken)")
    ap.add_argument("--sr", type=int, default=24000)
    ap.add_argument("--hop", type=int, default=120)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--sets", default="sung,spoken")
    a = ap.parse_args(argv)
    if not math.isclose(a.hop / a.sr, FP_MS / 1000):
        ap.error(f"--hop/--sr must be {FP_MS} ms (the truth's frame period); received {a.hop}/{a.sr}")
    print(machine_line())
    trackers = [t for t in a.trackers.split(",") if t]
    for set_name in a.sets.split(","):
        clips = make_clips(a.clips, a.seed + (set_name == "spoken"), sung=set_name == "sung")
        secs = sum(c[0].shape[0] for c in clips) / 16000
        res = run(trackers, clips, a.sr, a.hop)
        print(table(f"\n{set_name}: {len(clips)} clips, {secs:.1f} s, {a.sr} Hz, hop {a.hop}", res), flush=True)
    return 0
