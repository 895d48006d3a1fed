"""A third-party client: liblo's oscsend drives the server, oscdump receives the feedback."""
from __future__ import annotations

import queue
import re
import socket
import subprocess
import threading
import time

import pytest

from tests.host_bridge.server.oscclient import OscClient
from tests.sysdeps import needs

pytestmark = needs("liblo-tools")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_oscsend_sets_parameters_and_oscdump_sees_the_echo(server):
    port = _free_port()
    dump = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, text=True)
    ctl = OscClient(server.address)
    lines: list[str] = []
    q: queue.Queue = queue.Queue()
    # oscdump prints "<NTP time tag> <address> <types> <values>"; keep from the address on
    threading.Thread(target=lambda: [q.put(re.sub(r"^[0-9a-f]+\.[0-9a-f]+ ", "", x.strip())) for x in dump.stdout],
                     daemon=True).start()

    def read_until(prefix: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = q.get(timeout=0.05)
            except queue.Empty:
                continue
            lines.append(line)
            if line.startswith(prefix):
                return True
        return False

    try:
        host, sport = server.address
        for _ in range(50):  # until oscdump is listening: hello replies go to its port
            ctl.send("/svc/hello", "oscdump", port)
            if read_until("/svc/welcome", 0.2):
                break
        ctl.send("/svc/subscribe", "params")
        assert read_until("/svc/subscribed", 5), lines
        for args in (["/svc/param/transpose", "f", "-5.5"], ["/svc/param/mix/norm", "f", "0.25"],
                     ["/svc/bypass", "T"], ["/svc/param/speaker", "s", "alto"], ["/svc/bypass", "i", "0"],
                     ["/svc/param/transpose", "s", "high"]):
            subprocess.run(["oscsend", host, str(sport), *args], check=True, timeout=10)
        time.sleep(0.5)
        assert server.session.values["transpose"] == -5.5
        assert server.session.values["mix"] == 0.25
        assert server.session.values["speaker"] == "alto"
        ctl.send("/svc/ping", "done")  # last message: its pong lands in oscdump too
        assert read_until("/svc/pong", 5)
        text = "\n".join(lines)
        assert "/svc/welcome ssifi" in text
        assert "/svc/param/transpose f -5.5" in text
        assert "/svc/param/transpose/str s \"-5.50 st\"" in text
        assert "/svc/param/mix f 0.25" in text
        assert "/svc/param/bypass i 1" in text and "/svc/param/bypass i 0" in text
        assert "/svc/param/speaker s \"alto\"" in text
        assert "/svc/pong s \"done\"" in text
    finally:
        ctl.send("/svc/goodbye")
        ctl.close()
        dump.terminate()
        dump.wait(timeout=5)
        for k, v in (("transpose", 0.0), ("mix", 1.0), ("speaker", None)):
            server.session.set_param(k, v)
