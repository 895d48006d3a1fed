"""Our OSC parser/builder: round trips, python-osc interoperability, the packets that hang it."""
from __future__ import annotations

import struct
import time

import pytest

from host_bridge.server.protocol import (BUNDLE_TAG, MAX_DEPTH, OscParseError, build_bundle, build_message,
                                         parse_message, parse_packet)


def test_round_trip_of_every_built_type():
    m = parse_message(build_message("/a/b", 1, -2 ** 40, 0.5, "héllo", True, False, None, b"\x01\x02\x03"))
    assert m.address == "/a/b" and m.tags == "ihfsTFNb"
    assert m.args == [1, -2 ** 40, 0.5, "héllo", True, False, None, b"\x01\x02\x03"]


def test_python_osc_messages_and_bundles_parse():
    from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder

    mb = OscMessageBuilder("/svc/param/transpose")
    mb.add_arg(2.5)
    mb.add_arg("x")
    mb.add_arg(7)
    msg = mb.build()
    bb = OscBundleBuilder(IMMEDIATELY)
    bb.add_content(msg)
    bb.add_content(msg)
    out = parse_packet(bb.build().dgram)
    assert [m.args for m in out] == [[2.5, "x", 7]] * 2


def test_the_minus_four_bundle_is_refused_at_once():
    # python-osc loops forever on this packet: ours refuses it before any element is read
    pkt = BUNDLE_TAG + b"\x00" * 8 + struct.pack(">i", -4) + b"\x00" * 4
    with pytest.raises(OscParseError, match="element size -4"):
        parse_packet(pkt)


@pytest.mark.parametrize("data,why", [
    (b"", "non-zero multiple of 4"),
    (b"/ab", "non-zero multiple of 4"),
    (b"abcd", "must start with '/'"),
    (b"/a\x00\x00,i\x00\x00", "needs 4 bytes"),
    (b"/a\x00\x00,q\x00\x00", "unknown type tag"),
    (b"/a\x00\x00,[i]\x00\x00\x00\x00\x00\x00\x00\x01", "array arguments"),
    (b"/a\x00\x00,s\x00\x00\xff\x00\x00\x00", "UTF-8"),
    (b"/a\x00\x00,b\x00\x00\x00\x00\x10\x00", "blob size"),
    (b"/a\x00\x00i\x00\x00\x00", "must start with ','"),
    (b"/abc", "no terminating NUL"),
    (BUNDLE_TAG + b"\x00" * 4, "no complete time tag"),
    (BUNDLE_TAG + b"\x00" * 8 + struct.pack(">i", 8) + b"/a\x00\x00", "element size 8"),
    (b"/" + b"a" * 9000 + b"\x00" * 3, "at most 8192"),
])
def test_malformed_packets_say_why(data, why):
    with pytest.raises(OscParseError, match=why.replace("[", r"\[").replace("(", r"\(")):
        parse_packet(data)


def test_nesting_and_message_count_are_bounded():
    inner = build_message("/p")
    for _ in range(MAX_DEPTH):
        inner = build_bundle([inner])
    assert len(parse_packet(inner)) == 1
    with pytest.raises(OscParseError, match="nested deeper"):
        parse_packet(build_bundle([inner]))
    with pytest.raises(OscParseError, match="more than 128 messages"):
        parse_packet(build_bundle([build_message("/p")] * 129))


def test_future_time_tags_are_not_waited_for(monkeypatch):
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"parse_packet slept {seconds} s for a time tag")

    monkeypatch.setattr(time, "sleep", no_sleep)
    pkt = build_bundle([build_message("/p", 1)], (2 ** 32 - 1, 0))
    assert parse_packet(pkt)[0].args == [1]
