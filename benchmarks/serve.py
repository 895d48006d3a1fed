"""The live server under load: OSC round trip, parameter-change-to-audio time, audio RTF
while 1 000 OSC messages per second arrive.

    python -m benchmarks serve [--model DIR|NAME] [--seconds 5] [--block-size 1024] [--rate 1000]
                               [--jack-seconds 60]

First (benchmarks/serve_jack.py): `svc-host serve --jack` started as a user would, with default
flags, on JACK's dummy driver at 48 kHz / 256: seconds from process start to the first
`/svc/pong` and to ready, then xruns over --jack-seconds while a player feeds a vocal.

The server runs in this process (audio: the real-time pump, fed a sung-like vocal; OSC over
real UDP on 127.0.0.1). Parameter-change-to-audio is measured twice:
control = OSC send -> the first engine block that reads the new target (wall clock);
audio = the same change in samples of the output stream: from the output sample the
callback was playing when the message was sent to the first output sample that carries the
change (engine block start + the server's buffering; the engine applies gain/mix changes at
its output, ramped over 20 ms, so the engine's own latency does not add to them).
"""
from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


class _Probe:
    """Wraps the converter: logs (engine input index, value of a parameter) per block."""

    def __init__(self, conv: Any, host: Any, name: str) -> None:
        self._conv, self._host, self._name = conv, host, name
        self.log: list[tuple[float, int, Any]] = []
        self.busy = 0.0

    def process(self, x: np.ndarray) -> np.ndarray:
        seen = self._conv.get(self._name)
        t = time.perf_counter()
        y = self._conv.process(x)
        self.busy += time.perf_counter() - t
        self.log.append((t, self._host.eng_r, seen))
        return y

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conv, name)


def _pct(v: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(v), q)) if v else float("nan")


def _model_ref(ref: str | None, tmp: Path) -> tuple[str, str]:
    from svc_dsp.errors import SvcError
    from svc_dsp.models.catalog import load_model
    from svc_dsp.models.hpn import build_random, save_model_folder

    if ref:
        return ref, ref
    try:
        load_model("demo")
        return "demo", "demo"
    except SvcError:
        save_model_folder(build_random(), tmp / "random-hpn")
        return str(tmp / "random-hpn"), "random-weight hpn (demo voice not installed; same architecture)"


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks serve")
    ap.add_argument("--model")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each load phase")
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--rate", type=float, default=1000.0, help="OSC messages per second in the load phase")
    ap.add_argument("--pings", type=int, default=500)
    ap.add_argument("--jack-seconds", type=float, default=60.0,
                    help="length of the serve --jack run on the dummy driver (0 = skip it)")
    args = ap.parse_args(argv)

    if args.jack_seconds > 0:  # a separate process, before this one imports torch
        from benchmarks.serve_jack import SR, run
        from benchmarks.signals import vocal as make_vocal

        for line in run(args.jack_seconds, make_vocal(SR, 8.0, seed=2)):
            print(line, flush=True)
        print()

    import torch

    from benchmarks.common import machine_line
    from benchmarks.signals import vocal
    from host_bridge.server.app import ServeOptions, build
    from host_bridge.server.protocol import build_message, parse_packet

    torch.set_num_threads(1)
    sys.setswitchinterval(0.001)
    sr = 48000
    voice = vocal(sr, 8.0, seed=2)
    pos = [0]

    def source(n: int) -> np.ndarray:
        i = pos[0] % (voice.shape[0] - n)
        pos[0] += n
        return voice[i:i + n]

    with tempfile.TemporaryDirectory() as tmp:
        ref, label = _model_ref(args.model, Path(tmp))
        srv = build(ServeOptions(model=ref, osc_port=0, audio="none", sample_rate=sr, period=256,
                                 block_size=args.block_size, rate=0.0), source=source)
        host = srv.host
        probe = _Probe(host.converter, host, "output_gain_db")
        host.converter = probe
        print(machine_line() + "; torch 1 thread")
        print(f"model: {label}; {srv.banner().splitlines()[0]}")
        print(srv.banner().splitlines()[1])
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        try:
            time.sleep(1.0)
            # 1. round trip
            rtt = []
            for i in range(args.pings):
                t = time.perf_counter()
                sock.sendto(build_message("/svc/ping", i), srv.address)
                while True:
                    m = parse_packet(sock.recvfrom(65536)[0])[0]
                    if m.address == "/svc/pong" and m.args == [i]:
                        break
                rtt.append((time.perf_counter() - t) * 1e3)
            # 2. parameter change -> engine -> output
            control, audible = [], []
            for k in range(20):
                v = -6.0 if k % 2 == 0 else 0.0
                n_log = len(probe.log)
                out_r = host.out_r
                t = time.perf_counter()
                sock.sendto(build_message("/svc/param/output_gain_db", v), srv.address)
                deadline = t + 2.0
                hit = None
                while hit is None and time.perf_counter() < deadline:
                    for tb, eng_r, seen in probe.log[n_log:]:
                        if seen == v:
                            hit = (tb, eng_r)
                            break
                    time.sleep(0.001)
                if hit:
                    control.append((hit[0] - t) * 1e3)
                    audible.append((hit[1] + host.buffer_delay - out_r) * 1e3 / sr)
                time.sleep(0.05)
            # 3. RTF quiet vs. under OSC load
            def phase(load: bool) -> tuple[float, float, int, int]:
                b0, u0, busy0, st0 = host.blocks, host.underruns, probe.busy, srv.transport.stats.messages
                stop = threading.Event()

                def flood() -> None:
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    msgs = [build_message("/svc/param/transpose", 0.0), build_message("/svc/param/mix/get"),
                            build_message("/svc/ping", 1), build_message("/svc/param/gate_db/norm", 0.5)]
                    i, t0 = 0, time.perf_counter()
                    while not stop.is_set():
                        s.sendto(msgs[i % 4], srv.address)
                        i += 1
                        wait = t0 + i / args.rate - time.perf_counter()
                        if wait > 0:
                            time.sleep(wait)
                    s.close()

                th = threading.Thread(target=flood, daemon=True)
                if load:
                    th.start()
                time.sleep(args.seconds)
                stop.set()
                if load:
                    th.join()
                blocks = host.blocks - b0
                audio_s = blocks * host.block_size / sr
                rtf = (probe.busy - busy0) / audio_s if audio_s else float("nan")
                return rtf, audio_s / args.seconds, host.underruns - u0, srv.transport.stats.messages - st0

            quiet = phase(False)
            loaded = phase(True)
        finally:
            sock.close()
            srv.close()

    print()
    print(f"{'measure':44s} {'median':>9s} {'p99':>9s}")
    print(f"{'OSC round trip /svc/ping (ms)':44s} {statistics.median(rtt):9.3f} {_pct(rtt, 99):9.3f}")
    print(f"{'param change -> engine block (ms, wall)':44s} {statistics.median(control):9.2f} {_pct(control, 99):9.2f}")
    print(f"{'param change -> output stream (ms of audio)':44s} {statistics.median(audible):9.2f} "
          f"{_pct(audible, 99):9.2f}")
    print()
    print(f"{'phase':28s} {'engine RTF':>10s} {'audio/wall':>10s} {'underruns':>9s} {'OSC msgs':>9s}")
    for name, (rtf, pace, under, msgs) in (("quiet", quiet), (f"{args.rate:g} OSC msgs/s", loaded)):
        print(f"{name:28s} {rtf:10.3f} {pace:10.3f} {under:9d} {msgs:9d}")
    return 0
