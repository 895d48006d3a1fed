"""A tiny OSC test client over real UDP (our protocol module builds and parses)."""
from __future__ import annotations

import socket
import time
from typing import Any

from host_bridge.server.protocol import OscMessage, build_message, parse_packet


class OscClient:
    def __init__(self, server: tuple[str, int], name: str = "test") -> None:
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.name = name
        self.inbox: list[OscMessage] = []

    def close(self) -> None:
        self.sock.close()

    def send(self, address: str, *args: Any) -> None:
        self.sock.sendto(build_message(address, *args), self.server)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def _pump(self, timeout: float) -> bool:
        self.sock.settimeout(max(1e-3, timeout))
        try:
            data, _ = self.sock.recvfrom(65536)
        except (socket.timeout, BlockingIOError):
            return False
        self.inbox.extend(parse_packet(data))
        return True

    def wait(self, address: str, timeout: float = 30.0, where=None) -> OscMessage:
        """First message at ``address`` (matching ``where(msg)``) received, removed from the inbox.
        ``timeout`` only guards against a hang (a loaded CI machine answers late); speed is
        measured by python -m benchmarks serve."""
        deadline = time.monotonic() + timeout
        while True:
            for i, m in enumerate(self.inbox):
                if m.address == address and (where is None or where(m)):
                    return self.inbox.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                got = sorted({m.address for m in self.inbox})
                raise AssertionError(f"no {address} within {timeout}s; inbox has {got}")
            self._pump(left)

    def drain(self, seconds: float = 0.1) -> list[OscMessage]:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._pump(end - time.monotonic())
        out, self.inbox = self.inbox, []
        return out

    def request(self, address: str, *args: Any, reply: str, timeout: float = 30.0) -> OscMessage:
        self.send(address, *args)
        return self.wait(reply, timeout)
