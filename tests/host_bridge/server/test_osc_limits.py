"""Rate limits that many sockets cannot bypass, cost-weighted expensive requests, replies that fit
one datagram, and a hypothesis sweep of the OSC parser (driven without a network)."""
from __future__ import annotations

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from host_bridge.server.osc import COSTS, OscTransport
from host_bridge.server.protocol import MAX_DATAGRAM, OscParseError, build_message, parse_packet


def _transport(rate=0.01, burst=100.0, **kw):
    """A bound transport driven through receive(); the tiny refill rate keeps the counts exact."""
    seen = []
    t = OscTransport("127.0.0.1", 0, lambda src, m: seen.append((src, m.address)), rate=rate, burst=burst, **kw)
    t.start()
    return t, seen


def test_forty_sockets_of_one_host_share_its_budget():
    t, seen = _transport()
    try:
        ping = build_message("/svc/ping", 1)
        for port in range(40000, 40040):
            for _ in range(100):
                t.receive(ping, ("127.0.0.1", port))
        assert len(seen) == 100  # one host's burst, not 40 x 100
        assert t.stats.rate_limited == 3900
    finally:
        t.close()


def test_global_budget_over_many_hosts():
    t, seen = _transport(global_rate=0.01, global_burst=300.0)
    try:
        ping = build_message("/svc/ping", 1)
        for host in range(2, 42):
            for _ in range(50):
                t.receive(ping, (f"127.0.0.{host}", 9000))
        assert len(seen) == 300
    finally:
        t.close()


def test_expensive_requests_cost_more():
    t, seen = _transport()
    try:
        lst = build_message("/svc/param/list")
        for _ in range(100):
            t.receive(lst, ("127.0.0.1", 5000))
        assert COSTS["/svc/param/list"] > 1
        assert len(seen) == 100 // COSTS["/svc/param/list"]
        # a flood within the message rate cannot starve other hosts: they keep their own budget
        t.receive(build_message("/svc/ping", 1), ("127.0.0.9", 5001))
        assert seen[-1] == (("127.0.0.9", 5001), "/svc/ping")
    finally:
        t.close()


def test_replies_are_truncated_to_one_datagram():
    t, _ = _transport()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10)
    try:
        long = "é" * 9000 + "end"
        t.send(rx.getsockname(), "/svc/error", "/svc/job/submit", long)
        data, _ = rx.recvfrom(65536)
        assert len(data) <= MAX_DATAGRAM
        (m,) = parse_packet(data)
        assert m.args[0] == "/svc/job/submit" and m.args[1].startswith("é" * 100)
        assert m.args[1].endswith("[truncated]")
    finally:
        rx.close()
        t.close()


@settings(max_examples=300, deadline=10_000)
@given(st.binary(max_size=256) | st.builds(lambda a, b: b"#bundle\x00" + a + b, st.binary(min_size=8, max_size=8),
                                           st.binary(max_size=64)))
def test_random_packets_never_raise_anything_but_parse_errors(data):
    try:
        parse_packet(data)
    except OscParseError:
        pass


@settings(max_examples=100, deadline=10_000)
@given(st.binary(max_size=200))
def test_transport_survives_random_datagrams(data):
    t, _ = _transport(rate=1e6, burst=1e6)
    try:
        t.receive(data, ("127.0.0.1", 7000))
    finally:
        t.close()
