"""The OSC handler of a server that is still loading its model.

``svc-host serve`` binds its OSC port before anything heavy is imported or loaded, so a
controller that starts with the server is answered at once: ``/svc/ping`` -> ``/svc/pong``
and ``/svc/status`` -> ``/svc/status/loading s stage f progress`` + ``/svc/status/end``.
Every other message (hello, subscriptions, parameter sets, preset loads, ...) is kept in
arrival order and handed to the real router, in that order, as soon as the engine runs;
nothing sent during loading is lost (beyond ``MAX_QUEUED`` messages, the sender is told).
"""
from __future__ import annotations

import threading
from collections import deque
from typing import Any, Callable

from host_bridge.server.protocol import OscMessage

Address = tuple[str, int]
Handler = Callable[[Address, OscMessage], None]
MAX_QUEUED = 4096


class LoadingGate:
    """Handler for :class:`host_bridge.server.osc.OscTransport` while the server loads.

    ``stage`` names what is being done (``"starting"``, ``"model"``, ``"audio"``,
    ``"engine"``); ``progress`` is 0..1. ``ready(router)`` replays the queue through
    ``router`` and forwards everything after it.
    """

    def __init__(self) -> None:
        self.transport: Any = None
        self.stage, self.progress = "starting", 0.0
        self.queued_total = 0
        self._queue: deque[tuple[Address, OscMessage]] = deque()
        self._feedback: dict[Address, int] = {}  # /svc/hello's feedback port, seen while loading
        self._router: Handler | None = None
        self._lock = threading.Lock()

    @property
    def loading(self) -> bool:
        return self._router is None

    def set_stage(self, stage: str, progress: float) -> None:
        self.stage, self.progress = stage, float(progress)

    def _send(self, src: Address, address: str, *args: Any) -> None:
        if self.transport is not None:
            port = self._feedback.get(src) or src[1]
            self.transport.send((src[0], port), address, *args)

    def error(self, src: Address | None, address: str, problem: str) -> None:
        """Transport-level problems (rate limit, malformed packets) while loading."""
        if src is not None:
            self._send(src, "/svc/error", address, problem)

    def __call__(self, src: Address, msg: OscMessage) -> None:
        with self._lock:
            router = self._router
            if router is None:
                self._while_loading(src, msg)
                return
        router(src, msg)

    def _while_loading(self, src: Address, msg: OscMessage) -> None:
        if msg.address == "/svc/ping":
            self._send(src, "/svc/pong", *msg.args)
            return
        if msg.address == "/svc/status" and not msg.args:
            self._send(src, "/svc/status/loading", self.stage, self.progress)
            self._send(src, "/svc/status/end")
            return
        if msg.address == "/svc/hello" and msg.tags in ("si", "sh") and 0 < int(msg.args[1]) <= 65535:
            self._feedback[src] = int(msg.args[1])  # the router checks it again when it replays
        if len(self._queue) >= MAX_QUEUED:
            self._send(src, "/svc/error", msg.address,
                       f"the server is still loading ({self.stage}) and holds {MAX_QUEUED} messages already; "
                       f"this one was dropped: send it again once /svc/status answers with /svc/status/latency")
            return
        self._queue.append((src, msg))
        self.queued_total += 1

    def ready(self, router: Handler) -> None:
        """Hand every queued message to ``router`` in arrival order, then forward to it."""
        with self._lock:
            while self._queue:
                src, msg = self._queue.popleft()
                try:
                    router(src, msg)
                except Exception as e:  # as the transport does: a handler bug must not stop the server
                    self._send(src, "/svc/error", msg.address, f"internal error {type(e).__name__}: {e}")
            self._router = router
            self._feedback.clear()
            self.stage, self.progress = "ready", 1.0
