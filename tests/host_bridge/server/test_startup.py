"""`serve` binds OSC before it loads: ping and status answer while loading, and everything else
sent meanwhile (hello, parameter sets) is applied, in order, once the engine runs."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.host_bridge.server.oscclient import OscClient


def test_ping_status_and_queued_messages_while_loading(catalog):
    from host_bridge.server.app import ServeOptions, start

    startup = start(ServeOptions(preset="a-plain", osc_port=0, audio="off"))
    c = OscClient(startup.address)
    server = None
    try:
        # the model is not loaded yet (finish() has not run): these are answered by the loading gate
        assert c.request("/svc/ping", 1, "a", reply="/svc/pong").args == [1, "a"]
        loading = c.request("/svc/status", reply="/svc/status/loading")
        assert loading.args == ["starting", 0.0]
        c.wait("/svc/status/end")
        assert startup.gate.loading
        c.send("/svc/hello", "pytest", c.port)
        c.send("/svc/param/transpose", 3.0)
        c.send("/svc/param/mix", 0.5)
        c.send("/svc/param/transpose", 5.0)  # the last of two sets wins, as it would when loaded
        c.send("/svc/param/mix/get")
        assert c.request("/svc/ping", 2, reply="/svc/pong").args == [2]
        assert startup.gate.queued_total == 5 and c.drain(0.05) == []  # nothing answered yet

        server = startup.finish()
        assert not startup.gate.loading
        assert c.wait("/svc/welcome").args[0] == "svc-host"  # the hello, replayed
        assert c.wait("/svc/param/mix").args == [0.5]  # the query after the set sees it
        assert server.host.converter.get("transpose") == 5.0
        assert server.host.converter.get("mix") == 0.5
        assert c.request("/svc/param/transpose/get", reply="/svc/param/transpose").args == [5.0]
        status = c.request("/svc/status", reply="/svc/status/latency")
        assert status.args[0] == server.host.latency_samples
    finally:
        c.close()
        if server is not None:
            server.close()
        else:
            startup.transport.close()


def test_a_full_queue_tells_the_sender(catalog, monkeypatch):
    from host_bridge.server import startup as gate_module
    from host_bridge.server.app import ServeOptions, start

    monkeypatch.setattr(gate_module, "MAX_QUEUED", 2)
    startup = start(ServeOptions(preset="a-plain", osc_port=0, audio="off"))
    c = OscClient(startup.address)
    try:
        for v in (1.0, 2.0, 3.0):
            c.send("/svc/param/transpose", v)
        err = c.wait("/svc/error")
        assert err.args[0] == "/svc/param/transpose" and "still loading" in err.args[1] and "dropped" in err.args[1]
        server = startup.finish()
        try:
            assert c.request("/svc/param/transpose/get", reply="/svc/param/transpose").args == [2.0]
        finally:
            server.close()
    finally:
        c.close()


def test_a_failed_load_closes_the_port(catalog):
    from host_bridge.server.app import ServeOptions, start
    from svc_dsp.errors import SvcError

    startup = start(ServeOptions(model="no-such-model", osc_port=0, audio="off"))
    with pytest.raises(SvcError):
        startup.finish()
    assert startup.transport.sock.fileno() == -1


def test_cli_answers_a_ping_sent_right_after_start_and_applies_early_settings(catalog):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "host_bridge.cli", "serve", "--no-audio", "--preset", "a-plain", "--osc-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    c = None
    try:
        first = proc.stdout.readline()  # printed as soon as the port is bound, before the model loads
        m = re.search(r"OSC on 127\.0\.0\.1:(\d+), loading", first)
        assert m, first
        c = OscClient(("127.0.0.1", int(m.group(1))))
        c.send("/svc/param/transpose", 7.0)
        assert c.request("/svc/ping", "early", reply="/svc/pong").args == ["early"]
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[1].startswith("latency:"), lines
        assert c.request("/svc/param/transpose/get", reply="/svc/param/transpose").args == [7.0]
    finally:
        if c is not None:
            c.close()
        proc.terminate()
        proc.wait(timeout=30)
