"""OSC 1.0 wire format: parse and build packets ourselves.

python-osc 1.10.2 hangs on a bundle element size of -4, sleeps for future time tags and
drops parse errors silently (see PITFALLS.md). This parser is small, strict and bounded:
every size is checked against the bytes that remain before it is used, bundles nest at
most ``MAX_DEPTH`` deep, a packet yields at most ``MAX_MESSAGES`` messages, strings must be
valid UTF-8, and every failure raises :class:`OscParseError` with a message saying what
was wrong. Bundle time tags are read but never waited for (everything runs immediately).

Supported argument types: i h f d s S b T F N I c r m t. Arrays ``[ ]`` are refused.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable

MAX_DATAGRAM = 8192     # bytes; larger datagrams are counted and reported, never parsed
MAX_DEPTH = 4           # bundle nesting
MAX_MESSAGES = 128      # messages per datagram
MAX_ARGS = 64           # arguments per message
BUNDLE_TAG = b"#bundle\x00"


class OscParseError(ValueError):
    """A datagram that is not valid OSC (the message says where and why)."""


@dataclass
class OscMessage:
    """address: '/svc/...'; args: Python values; tags: the type tag string without ','."""

    address: str
    args: list[Any] = field(default_factory=list)
    tags: str = ""


@dataclass
class TimeTag:
    seconds: int
    fraction: int

    @property
    def immediate(self) -> bool:
        return self.seconds == 0 and self.fraction == 1


def _read_string(data: bytes, pos: int, what: str) -> tuple[str, int]:
    end = data.find(b"\x00", pos)
    if end < 0:
        raise OscParseError(f"{what} at byte {pos} has no terminating NUL")
    raw = data[pos:end]
    nxt = (end + 4) & ~3
    if nxt > len(data):
        raise OscParseError(f"{what} at byte {pos} is not padded to a multiple of 4 bytes")
    try:
        return raw.decode("utf-8"), nxt
    except UnicodeDecodeError as e:
        raise OscParseError(f"{what} at byte {pos} is not valid UTF-8 ({e.reason} at offset {e.start})") from None


def _need(data: bytes, pos: int, n: int, what: str) -> None:
    if pos + n > len(data):
        raise OscParseError(f"{what} at byte {pos} needs {n} bytes; only {len(data) - pos} remain")


def parse_message(data: bytes) -> OscMessage:
    """One OSC message (address, type tags, arguments) -> OscMessage."""
    if not data.startswith(b"/"):
        raise OscParseError(f"message must start with '/'; received {data[:16]!r}")
    address, pos = _read_string(data, 0, "address")
    if pos >= len(data):
        return OscMessage(address, [], "")  # OSC 1.0 allows a message without type tags
    tags, pos = _read_string(data, pos, "type tag string")
    if not tags.startswith(","):
        raise OscParseError(f"type tag string must start with ','; received {tags[:16]!r}")
    tags = tags[1:]
    if len(tags) > MAX_ARGS:
        raise OscParseError(f"{len(tags)} arguments; at most {MAX_ARGS} are accepted")
    args: list[Any] = []
    for i, t in enumerate(tags):
        what = f"argument {i + 1} ('{t}')"
        if t in "ifcrm":
            _need(data, pos, 4, what)
            chunk = data[pos:pos + 4]
            pos += 4
            if t == "i":
                args.append(struct.unpack(">i", chunk)[0])
            elif t == "f":
                args.append(struct.unpack(">f", chunk)[0])
            elif t == "c":
                args.append(chr(struct.unpack(">I", chunk)[0] & 0x10FFFF))
            elif t == "r":
                args.append(struct.unpack(">I", chunk)[0])
            else:
                args.append(tuple(chunk))
        elif t in "hdt":
            _need(data, pos, 8, what)
            chunk = data[pos:pos + 8]
            pos += 8
            args.append(struct.unpack(">d", chunk)[0] if t == "d" else
                        struct.unpack(">q", chunk)[0] if t == "h" else TimeTag(*struct.unpack(">II", chunk)))
        elif t in "sS":
            s, pos = _read_string(data, pos, what)
            args.append(s)
        elif t == "b":
            _need(data, pos, 4, what)
            size = struct.unpack(">i", data[pos:pos + 4])[0]
            pos += 4
            if size < 0 or pos + size > len(data):
                raise OscParseError(f"{what}: blob size {size} does not fit the {len(data) - pos} bytes that remain")
            args.append(bytes(data[pos:pos + size]))
            pos = (pos + size + 3) & ~3
        elif t == "T":
            args.append(True)
        elif t == "F":
            args.append(False)
        elif t == "N":
            args.append(None)
        elif t == "I":
            args.append(math.inf)
        elif t in "[]":
            raise OscParseError("array arguments ('[' ']') are not supported; send the values as separate arguments")
        else:
            raise OscParseError(f"unknown type tag {t!r} in argument {i + 1}; supported: i h f d s S b T F N I c r m t")
    if pos > len(data):
        raise OscParseError("message arguments run past the end of the packet")
    return OscMessage(address, args, tags)


def parse_packet(data: bytes) -> list[OscMessage]:
    """A datagram (message or bundle) -> its messages in order, bundles flattened.

    Time tags are ignored: bundled messages are dispatched at once (a server that waits
    for a time tag can be stalled by any sender).
    """
    if len(data) > MAX_DATAGRAM:
        raise OscParseError(f"datagram of {len(data)} bytes; at most {MAX_DATAGRAM} are accepted")
    if len(data) == 0 or len(data) % 4:
        raise OscParseError(f"datagram of {len(data)} bytes; OSC packets are a non-zero multiple of 4 bytes")
    out: list[OscMessage] = []
    _parse_into(data, out, 0)
    return out


def _parse_into(data: bytes, out: list[OscMessage], depth: int) -> None:
    if data.startswith(BUNDLE_TAG):
        if depth >= MAX_DEPTH:
            raise OscParseError(f"bundles nested deeper than {MAX_DEPTH}")
        if len(data) < 16:
            raise OscParseError(f"bundle of {len(data)} bytes has no complete time tag")
        pos = 16
        while pos < len(data):
            _need(data, pos, 4, "bundle element size")
            size = struct.unpack(">i", data[pos:pos + 4])[0]
            pos += 4
            if size <= 0 or size % 4 or pos + size > len(data):
                raise OscParseError(f"bundle element size {size} at byte {pos - 4} is invalid; it must be positive, "
                                    f"a multiple of 4 and fit the {len(data) - pos} bytes that remain")
            _parse_into(data[pos:pos + size], out, depth + 1)
            pos += size
        return
    if len(out) >= MAX_MESSAGES:
        raise OscParseError(f"more than {MAX_MESSAGES} messages in one datagram")
    out.append(parse_message(data))


# -- building --------------------------------------------------------------------------
def _pad_string(s: str) -> bytes:
    b = s.encode("utf-8") + b"\x00"
    return b + b"\x00" * (-len(b) % 4)


def build_message(address: str, *args: Any) -> bytes:
    """address + Python values -> one OSC message.

    int -> i (h beyond 32 bits), float -> f, str -> s, bool -> T/F, None -> N, bytes -> b.
    """
    tags = [","]
    body = []
    for a in args:
        if isinstance(a, bool):
            tags.append("T" if a else "F")
        elif isinstance(a, int):
            if -2 ** 31 <= a < 2 ** 31:
                tags.append("i")
                body.append(struct.pack(">i", a))
            else:
                tags.append("h")
                body.append(struct.pack(">q", a))
        elif isinstance(a, float):
            tags.append("f")
            body.append(struct.pack(">f", a))
        elif isinstance(a, str):
            tags.append("s")
            body.append(_pad_string(a))
        elif a is None:
            tags.append("N")
        elif isinstance(a, (bytes, bytearray)):
            tags.append("b")
            body.append(struct.pack(">i", len(a)) + bytes(a) + b"\x00" * (-len(a) % 4))
        else:
            raise TypeError(f"cannot send {type(a).__name__} over OSC: {a!r}")
    return _pad_string(address) + _pad_string("".join(tags)) + b"".join(body)


def build_bundle(elements: Iterable[bytes], timetag: tuple[int, int] = (0, 1)) -> bytes:
    parts = [BUNDLE_TAG, struct.pack(">II", *timetag)]
    for e in elements:
        parts.append(struct.pack(">i", len(e)) + e)
    return b"".join(parts)
