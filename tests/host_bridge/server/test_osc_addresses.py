"""Every /svc address over real UDP on 127.0.0.1 (in-process server, engine idle)."""
from __future__ import annotations

import struct
import time

import pytest

from host_bridge.server.protocol import build_bundle, build_message
from svc_dsp.engine.parameters import PARAMETERS
from tests.host_bridge.server.oscclient import OscClient


def test_ping_pong_echoes_arguments(client):
    m = client.request("/svc/ping", 42, "x", reply="/svc/pong")
    assert m.args == [42, "x"]


def test_replies_go_to_declared_feedback_port(server):
    sender = OscClient(server.address)
    listener = OscClient(server.address)
    try:
        sender.send("/svc/hello", "reaper", listener.port)
        w = listener.wait("/svc/welcome")
        assert w.args[0] == "svc-host" and w.args[2] == server.session.latency()[0]
        sender.send("/svc/ping", 7)
        assert listener.wait("/svc/pong").args == [7]
        assert not [m for m in sender.drain(0.2) if m.address == "/svc/pong"]  # not to the source port
    finally:
        sender.close()
        listener.close()


def test_hello_validates_arguments(client):
    client.send("/svc/hello", 5, "x")
    e = client.wait("/svc/error")
    assert e.args[0] == "/svc/hello" and "received type tags ',is'" in e.args[1]
    client.send("/svc/hello", "x", 70000)
    assert "outside 0..65535" in client.wait("/svc/error").args[1]


def test_subscribe_params_sends_state_and_echoes_changes(server, client):
    other = OscClient(server.address)
    try:
        client.send("/svc/subscribe", "params")
        assert client.wait("/svc/subscribed").args == ["params"]
        assert client.wait("/svc/param/transpose/str").args[0].endswith("st")
        client.drain(0.2)
        other.send("/svc/param/transpose", 2.5)
        assert client.wait("/svc/param/transpose").args == [2.5]
        assert client.wait("/svc/param/transpose/norm").args[0] == pytest.approx((2.5 + 36) / 72, abs=1e-6)
        assert client.wait("/svc/param/transpose/str").args == ["+2.50 st"]
        assert server.session.host.converter.get("transpose") == 2.5
        other.send("/svc/param/transpose/norm", 0.5)
        assert client.wait("/svc/param/transpose").args == [0.0]
        client.send("/svc/subscribe", "bogus")
        assert "unknown topic" in client.wait("/svc/error").args[1]
        client.send("/svc/unsubscribe", "params")
        assert client.wait("/svc/subscribed").args == []
    finally:
        other.close()


def test_param_get_str_and_errors(client):
    client.send("/svc/param/gate_db", -40)
    client.send("/svc/param/gate_db/get")
    assert client.wait("/svc/param/gate_db").args == [-40.0]
    assert client.wait("/svc/param/gate_db/str").args == ["-40.0 dB"]
    client.send("/svc/param/gate_db/str")
    assert client.wait("/svc/param/gate_db/str").args == ["-40.0 dB"]
    client.send("/svc/param/gate_db", 5.0)
    e = client.wait("/svc/error")
    assert e.args[0] == "/svc/param/gate_db" and "out of range" in e.args[1] and "-120" in e.args[1]
    client.send("/svc/param/gate_db", "loud")
    assert "received type tags ',s'" in client.wait("/svc/error").args[1]
    client.send("/svc/param/gate_db/norm", 1.5)
    assert "outside [0, 1]" in client.wait("/svc/error").args[1]
    client.send("/svc/param/nothing", 1.0)
    e = client.wait("/svc/error")
    assert e.args[0] == "/svc/param/nothing" and "transpose" in e.args[1]
    client.send("/svc/param/speaker", "bass")
    assert "alto" in client.wait("/svc/error").args[1]
    client.send("/svc/param/speaker", "tenor")
    client.send("/svc/param/speaker/get")
    assert client.wait("/svc/param/speaker").args == ["tenor"]
    client.send("/svc/param/speaker_mix", "alto", 0.25, "tenor", 0.75)
    client.send("/svc/param/speaker_mix/get")
    assert client.wait("/svc/param/speaker_mix").args == ["alto", 0.25, "tenor", 0.75]
    client.send("/svc/param/speaker_mix", "")
    client.send("/svc/param/speaker", "")
    client.send("/svc/param/gate_db", -60.0)


def test_param_list_has_every_parameter_and_an_end_marker(client):
    client.send("/svc/param/list")
    infos = [client.wait("/svc/param/info") for _ in PARAMETERS]
    end = client.wait("/svc/param/list/end")
    assert end.args == [len(PARAMETERS)]
    assert [m.args[1] for m in infos] == list(PARAMETERS)
    tr = infos[0].args
    assert tr[2:6] == ["float", "st", -36.0, 36.0]


def test_bypass_and_mix_shortcuts(server, client):
    client.send("/svc/bypass", True)
    client.send("/svc/bypass")
    assert client.wait("/svc/param/bypass").args == [1]
    client.send("/svc/bypass", 0)
    client.send("/svc/mix", 0.25)
    client.send("/svc/mix")
    assert client.wait("/svc/param/mix").args == [0.25]
    assert server.session.host.converter.get("bypass") is False
    client.send("/svc/bypass", 0.5)
    assert "true/false" in client.wait("/svc/error").args[1]
    client.send("/svc/mix", 1.0)


def test_status(client, server):
    client.send("/svc/status")
    lat = client.wait("/svc/status/latency")
    assert lat.args[0] == server.host.latency_samples
    assert lat.args[1] == pytest.approx(1000 * lat.args[0] / 48000, rel=1e-6)
    assert client.wait("/svc/status/sample_rate").args == [48000]
    assert client.wait("/svc/status/block_size").args == [1024, 256]
    assert len(client.wait("/svc/status/rtf").args) == 2
    assert client.wait("/svc/status/xruns").args[0] == 0
    client.wait("/svc/status/end")


def test_presets_and_models(server, client):
    client.send("/svc/subscribe", "params", "presets")
    client.drain(0.3)
    client.send("/svc/preset/list")
    end = client.wait("/svc/preset/list/end")  # the shipped presets/ folder is a catalog root too
    items = [m.args for m in client.drain(0.1) if m.address == "/svc/preset/item"]
    assert items[:3] == [[0, "a-plain"], [1, "b-up"], [2, "c-double"]] and end.args[0] == len(items)
    client.send("/svc/preset/load", "b-up")
    assert client.wait("/svc/preset/current", timeout=10).args == ["b-up"]
    assert server.session.values["transpose"] == 12.0
    client.send("/svc/preset/next")
    assert client.wait("/svc/preset/current", timeout=10).args == ["c-double"]
    assert client.wait("/svc/param/speaker").args == ["tenor"]  # a preset load is echoed too
    client.send("/svc/preset/prev")
    assert client.wait("/svc/preset/current", timeout=10).args == ["b-up"]
    for bad in ("../b-up", "/etc/passwd", "nope"):
        client.send("/svc/preset/load", bad)
        e = client.wait("/svc/error", timeout=10)
        assert e.args[0] == "/svc/preset/load" and ("no paths" in e.args[1] or "no preset named" in e.args[1])
    client.send("/svc/model/list")
    end = client.wait("/svc/model/list/end")
    models = [m.args[1] for m in client.drain(0.1) if m.address == "/svc/model/item"]
    assert {"rnd", "rnd2"} <= set(models) and end.args == [len(models), "rnd"]
    client.send("/svc/model/load", "rnd2")
    assert client.wait("/svc/model/current", timeout=20).args == ["rnd2"]
    assert server.session.model_name == "rnd2"
    client.send("/svc/model/load", "../rnd")
    assert "only catalog names" in client.wait("/svc/error", timeout=10).args[1]
    client.send("/svc/preset/save", "z-saved")
    assert client.wait("/svc/preset/saved", timeout=10).args == ["z-saved"]
    client.send("/svc/preset/save", "../evil")
    assert "no paths" in client.wait("/svc/error", timeout=10).args[1]
    client.send("/svc/preset/load", "a-plain")
    client.wait("/svc/preset/current", timeout=20, where=lambda m: m.args == ["a-plain"])
    client.send("/svc/unsubscribe", "all")


def test_meters_arrive_at_a_bounded_rate(client):
    client.send("/svc/subscribe", "meters")
    client.drain(1.0)
    msgs = [m for m in client.drain(1.0) if m.address == "/svc/meter"]
    client.send("/svc/unsubscribe", "meters")
    assert 5 <= len(msgs) <= 25  # --meter-rate 20
    assert len(msgs[0].args) == 4


def test_unknown_address_and_malformed_packets_are_reported(server, client):
    client.send("/svc/nope")
    e = client.wait("/svc/error")
    assert e.args[0] == "/svc/nope" and "unknown address" in e.args[1]
    bad = b"#bundle\x00" + b"\x00" * 8 + struct.pack(">i", -4) + b"\x00" * 4  # hangs python-osc
    before = server.transport.stats.malformed
    client.send_raw(bad)
    assert "element size -4" in client.wait("/svc/error").args[1]
    assert server.transport.stats.malformed == before + 1
    client.send_raw(build_message("/svc/ping", 1)[:-4])  # truncated: the int is missing
    client.wait("/svc/error")
    client.send_raw(b"/svc/ping\x00\x00\x00,s\x00\x00\xff\xfe\x00\x00")
    assert "UTF-8" in client.wait("/svc/error").args[1]
    assert client.request("/svc/ping", reply="/svc/pong").args == []


def test_oversize_datagrams_are_counted_and_reported(server, client):
    before = server.transport.stats.oversize
    client.send_raw(build_message("/svc/ping", b"x" * 9000))
    e = client.wait("/svc/error")
    assert "bytes dropped" in e.args[1] and "8192" in e.args[1]
    assert server.transport.stats.oversize == before + 1


def test_bundles_run_at_once_even_with_future_time_tags(client):
    future = (int(time.time()) + 2208988800 + 3600, 0)  # an hour ahead, NTP epoch
    b = build_bundle([build_message("/svc/ping", 1), build_bundle([build_message("/svc/ping", 2)])], future)
    client.send_raw(b)  # an hour ahead: a server that waited would miss both replies
    assert client.wait("/svc/pong").args == [1]
    assert client.wait("/svc/pong").args == [2]


def test_rate_limit_per_sender(catalog):
    from tests.host_bridge.server.conftest import make_server

    import socket

    srv = make_server(catalog, rate=1.0, burst=20.0)
    a, b = OscClient(srv.address), OscClient(srv.address)
    b.sock.close()  # b is another host (127.0.0.2): the budget is per host, not per socket
    b.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.sock.bind(("127.0.0.2", 0))
    b.port = b.sock.getsockname()[1]
    try:
        t0 = time.monotonic()
        for i in range(200):
            a.send("/svc/ping", i)
        # one socket, handled in order: b's answer comes after all of a's
        assert b.request("/svc/ping", reply="/svc/pong").args == []  # other hosts unaffected
        elapsed = time.monotonic() - t0
        got = a.drain(0.2)
        pongs = [m for m in got if m.address == "/svc/pong"]
        # the burst, plus at most what the bucket refilled (1/s) while this ran, however slow
        assert 20 <= len(pongs) <= 20 + elapsed + 1
        assert [m.args[0] for m in pongs[:20]] == list(range(20))
        assert any(m.address == "/svc/error" and "rate limit" in m.args[1] for m in got)
        assert srv.transport.stats.rate_limited == 200 - len(pongs)
    finally:
        a.close()
        b.close()
        srv.close()


def test_allow_list_and_public_bind(catalog, server):
    from host_bridge.server.osc import AllowList
    from svc_dsp.errors import SvcError
    from tests.host_bridge.server.conftest import make_server

    allow = AllowList(["192.168.1.0/24"])
    assert "127.0.0.1" in allow and "192.168.1.7" in allow and "10.0.0.1" not in allow
    assert "::ffff:192.168.1.7" in allow and "garbage" not in allow
    with pytest.raises(ValueError, match="not an IP address"):
        AllowList(["my-laptop"])
    before = server.transport.stats.denied
    server.transport.receive(build_message("/svc/ping"), ("10.0.0.1", 9999))
    assert server.transport.stats.denied == before + 1
    with pytest.raises(SvcError, match="--allow"):
        make_server(catalog, host="0.0.0.0")
