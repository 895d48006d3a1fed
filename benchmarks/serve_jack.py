"""`svc-host serve --jack` as a user starts it, on JACK's dummy driver: time from process start to
the first `/svc/pong` and to the printed latency (ready), then xruns over a timed run while a
player client feeds a sung-like vocal into `svc-host:in` (part of ``python -m benchmarks serve``).

Only the server's own flags needed to find it are given (``--jack --jack-server NAME --osc-port
PORT``); everything else is the default a user gets.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from typing import Any

import numpy as np

SR, PERIOD = 48000, 256


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(sock: socket.socket, addr: tuple[str, int], timeout: float = 10.0) -> dict[str, list[Any]]:
    from host_bridge.server.protocol import build_message, parse_packet

    sock.sendto(build_message("/svc/status"), addr)
    out: dict[str, list[Any]] = {}
    deadline = time.monotonic() + timeout
    while "/svc/status/end" not in out and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recvfrom(65536)[0]
        except socket.timeout:
            break
        for m in parse_packet(data):
            out[m.address] = m.args
    return out


def run(seconds: float, vocal: np.ndarray) -> list[str]:
    """-> report lines; starts jackd and the server itself and stops both."""
    if shutil.which("jackd") is None:
        return ["serve --jack: skipped, needs jackd2 and libjack-jackd2-0: scripts/install-system-deps.sh"]
    import jack

    from host_bridge.server.protocol import build_message, parse_packet

    name = f"svcbench{os.getpid()}"
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1", PYTHONUNBUFFERED="1")
    jackd = subprocess.Popen(["jackd", "-n", name, "-d", "dummy", "-r", str(SR), "-p", str(PERIOD)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    server = player = None
    lines: list[str] = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                jack.Client("probe", servername=name, no_start_server=True).close()
                break
            except jack.JackOpenError:
                if time.monotonic() > deadline or jackd.poll() is not None:
                    return ["serve --jack: jackd -d dummy did not start"]
                time.sleep(0.1)
        port = _free_udp_port()
        addr = ("127.0.0.1", port)
        cmd = [sys.executable, "-m", "host_bridge.cli", "serve", "--jack", "--jack-server", name,
               "--osc-port", str(port)]
        t0 = time.perf_counter()
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        first_pong = None
        i = 0
        while first_pong is None and time.perf_counter() - t0 < 60 and server.poll() is None:
            i += 1
            sock.sendto(build_message("/svc/ping", i), addr)
            sock.settimeout(0.005)
            try:
                while True:
                    if any(m.address == "/svc/pong" for m in parse_packet(sock.recvfrom(65536)[0])):
                        first_pong = time.perf_counter() - t0
                        break
            except (socket.timeout, ConnectionRefusedError):
                pass
        out = []
        for line in server.stdout:
            out.append(line)
            if line.startswith("latency:") or line.startswith("svc-host serve: ") and "loading" not in line \
                    and "OSC on" not in line:
                break
        ready = time.perf_counter() - t0
        banner = "".join(out)
        if not any(ln.startswith("latency:") for ln in out):
            return [f"serve --jack: the server did not start: {banner.strip()}"]
        latency = re.search(r"latency: (\d+) samples = ([\d.]+) ms", banner)
        cfg = re.search(r"audio: .*", banner)
        lines.append(f"serve --jack (default flags), jackd -d dummy -r {SR} -p {PERIOD}: "
                     f"{cfg.group(0) if cfg else ''}")
        lines.append(f"first /svc/pong after process start: {first_pong:.2f} s"
                     if first_pong is not None else "first /svc/pong: none within 60 s")
        lines.append(f"ready (latency printed) after process start: {ready:.2f} s; "
                     f"latency {latency.group(1)} samples = {latency.group(2)} ms")

        player = jack.Client("bench-player", servername=name, no_start_server=True)
        out_port = player.outports.register("out")
        pos = [0]

        def play(frames: int) -> None:
            p = pos[0] % (vocal.shape[0] - frames)
            out_port.get_array()[:] = vocal[p:p + frames]
            pos[0] = p + frames

        player.set_process_callback(play)
        player.activate()
        player.connect(out_port, "svc-host:in")
        time.sleep(1.0)  # the first callbacks after connecting
        before = _status(sock, addr)
        time.sleep(seconds)
        after = _status(sock, addr)
        xb, xa = before.get("/svc/status/xruns"), after.get("/svc/status/xruns")
        rtf = after.get("/svc/status/rtf")
        if xb and xa:
            d = [a - b for a, b in zip(xa, xb)]
            lines.append(f"xruns in {seconds:g} s: {d[0]} (underruns {d[1]}, overruns {d[2]}, driver {d[3]}, "
                         f"callback errors {d[4]}, engine {d[5]}); engine RTF ema {rtf[0]:.3f}, max {rtf[1]:.3f}")
        else:
            lines.append("xruns: the server did not answer /svc/status")
    finally:
        sock.close()
        if player is not None:
            player.deactivate()
            player.close()
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        jackd.terminate()
        try:
            jackd.wait(timeout=10)
        except subprocess.TimeoutExpired:
            jackd.kill()
    return lines
