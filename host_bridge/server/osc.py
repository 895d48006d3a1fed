"""UDP transport for the OSC server: allow-list, per-sender rate limit, size check, parse.

One receive thread reads datagrams with a 64 KiB buffer, so a datagram over
``MAX_DATAGRAM`` bytes is seen whole, counted and reported (python-osc drops those
silently). A datagram is charged *before* it is parsed to its sender host's token bucket
(keyed by IP, not IP:port, so opening more sockets buys nothing) and to one global bucket
shared by all senders; after parsing, a bundle is charged once more per extra message and
an expensive request (:data:`COSTS`: lists, job submits) its extra cost. Parse failures are
counted and reported on ``/svc/error`` to the sender (error replies are themselves
limited per host, so a flood cannot turn the server into an amplifier). Every reply is cut
to fit one datagram of ``MAX_DATAGRAM`` bytes (longest strings first, on a UTF-8 boundary).
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable

from host_bridge.server.protocol import MAX_DATAGRAM, OscMessage, OscParseError, build_message, parse_packet

Address = tuple[str, int]
MAX_SENDERS = 1024          # token buckets kept (least recently seen evicted)
ERROR_REPLIES_PER_S = 10.0  # /svc/error replies per sender host
GLOBAL_FACTOR = 2.0         # all senders together: this many times one host's rate and burst
TRUNCATED = " ...[truncated]"
# messages a request costs, roughly the replies and work it causes (a ping costs 1)
COSTS: dict[str, int] = {"/svc/param/list": 16, "/svc/preset/list": 16, "/svc/model/list": 16,
                         "/svc/midi/mapping": 16, "/svc/job/submit": 32, "/svc/status": 4,
                         "/svc/preset/load": 32, "/svc/model/load": 64, "/svc/preset/save": 32}


def fit_datagram(address: str, args: tuple[object, ...]) -> bytes:
    """``build_message(address, *args)``, with the longest string arguments shortened (on a UTF-8
    character boundary, marked ``...[truncated]``) until it fits ``MAX_DATAGRAM`` bytes."""
    data = build_message(address, *args)
    if len(data) <= MAX_DATAGRAM:
        return data
    out = list(args)
    for _ in range(len(out) + 1):
        strs = [i for i, a in enumerate(out) if isinstance(a, str)]
        if not strs:
            break
        i = max(strs, key=lambda j: len(str(out[j]).encode("utf-8")))
        raw = str(out[i]).encode("utf-8")
        excess = len(data) - MAX_DATAGRAM + len(TRUNCATED) + 4
        keep = raw[:max(0, len(raw) - excess)].decode("utf-8", errors="ignore")
        out[i] = keep + TRUNCATED
        data = build_message(address, *out)
        if len(data) <= MAX_DATAGRAM:
            return data
    return build_message("/svc/error", address[:200], "reply too large for one datagram; dropped")


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; take() spends one if there is one."""

    __slots__ = ("rate", "burst", "tokens", "t")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate, self.burst, self.tokens, self.t = rate, burst, burst, now

    def take(self, now: float, n: float = 1.0) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class AllowList:
    """Client addresses allowed to talk to the server (IPs or CIDR networks); loopback always."""

    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")]
        for e in entries:
            try:
                self.networks.append(ipaddress.ip_network(e, strict=False))
            except ValueError:
                raise ValueError(f"--allow {e!r} is not an IP address or network (e.g. 192.168.1.20 or "
                                 f"192.168.1.0/24)") from None

    def __contains__(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        return any(ip in n for n in self.networks if n.version == ip.version)


@dataclass
class TransportStats:
    datagrams: int = 0
    messages: int = 0
    malformed: int = 0
    oversize: int = 0
    rate_limited: int = 0
    denied: int = 0
    handler_errors: int = 0


class OscTransport:
    """Bound UDP socket + receive thread. ``handler(sender, message)`` runs on that thread."""

    def __init__(self, host: str, port: int, handler: Callable[[Address, OscMessage], None], *,
                 allow: AllowList | None = None, rate: float = 1000.0, burst: float = 2000.0,
                 global_rate: float | None = None, global_burst: float | None = None,
                 on_error: Callable[[Address, str, str], None] | None = None,
                 backoff: Callable[[], bool] | None = None) -> None:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise OSError(f"cannot bind OSC port {host}:{port} ({e.strerror}); pick another with --osc-port") from None
        self.address: Address = self.sock.getsockname()[:2]
        self.handler = handler
        self.allow = allow or AllowList()
        self.rate, self.burst = float(rate), float(burst)
        self.on_error = on_error
        self.backoff = backoff  # True while audio is starving: control traffic waits a little
        self.stats = TransportStats()
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._err_buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        g_rate = float(global_rate) if global_rate is not None else GLOBAL_FACTOR * self.rate
        g_burst = float(global_burst) if global_burst is not None else GLOBAL_FACTOR * self.burst
        self._global = TokenBucket(g_rate, g_burst, time.monotonic())
        self._send_lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="osc-recv", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop = True
        try:  # wake the blocking recvfrom
            s = socket.socket(self.sock.family, socket.SOCK_DGRAM)
            s.sendto(b"", self.address)
            s.close()
        except OSError:
            pass
        self._thread.join(timeout=2)
        self.sock.close()

    # -- sending --------------------------------------------------------------------
    def send(self, to: Address, address: str, *args: object) -> None:
        self.send_raw(to, fit_datagram(address, args))

    def send_raw(self, to: Address, data: bytes) -> None:
        try:
            self.sock.sendto(data, to)  # UDP sendto does not block on a full peer
        except OSError:
            pass  # a client that went away must not stop the server

    def error_allowed(self, to: Address) -> bool:
        return self._bucket(self._err_buckets, to[0], ERROR_REPLIES_PER_S, ERROR_REPLIES_PER_S).take(time.monotonic())

    # -- receiving --------------------------------------------------------------------
    def _charge(self, host: str, n: float) -> bool:
        """Spend ``n`` from the host's bucket and the global one (from neither when either is short)."""
        now = time.monotonic()
        b = self._bucket(self._buckets, host, self.rate, self.burst)
        if not b.take(now, n):
            return False
        if not self._global.take(now, n):
            b.tokens += n  # refund: the host did not get its message through
            return False
        return True

    def _bucket(self, table: OrderedDict, key: str, rate: float, burst: float) -> TokenBucket:
        b = table.get(key)
        if b is None:
            b = table[key] = TokenBucket(rate, burst, time.monotonic())
            if len(table) > MAX_SENDERS:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        return b

    def _report(self, sender: Address, address: str, problem: str) -> None:
        if self.on_error is not None and self.error_allowed(sender):
            self.on_error(sender, address, problem)

    def _run(self) -> None:
        while not self._stop:
            try:
                data, sender = self.sock.recvfrom(65536)
            except OSError:
                if self._stop:
                    return
                continue
            if self._stop:
                return
            self.receive(data, sender[:2])
            if self.backoff is not None and self.backoff():
                time.sleep(0.002)  # let the engine thread have the GIL; datagrams wait in the socket

    def receive(self, data: bytes, sender: Address) -> None:
        """Check, parse and dispatch one datagram (public so tests can drive it directly)."""
        st = self.stats
        st.datagrams += 1
        if sender[0] not in self.allow:
            st.denied += 1
            return
        limited = self.rate > 0
        if limited and not self._charge(sender[0], 1.0):
            st.rate_limited += 1
            self._report(sender, "", f"rate limit: more than {self.rate:g} messages/s from {sender[0]} (burst "
                                     f"{self.burst:g}) or the server's total budget; message dropped, slow down")
            return
        if len(data) > MAX_DATAGRAM:
            st.oversize += 1
            self._report(sender, "", f"datagram of {len(data)} bytes dropped; at most {MAX_DATAGRAM} bytes are "
                                     f"accepted (split the bundle)")
            return
        try:
            messages = parse_packet(data)
        except OscParseError as e:
            st.malformed += 1
            self._report(sender, "", f"malformed OSC packet: {e}")
            return
        extra = len(messages) - 1 + sum(COSTS.get(m.address, 1) - 1 for m in messages)
        if limited and extra > 0 and not self._charge(sender[0], float(extra)):
            st.rate_limited += 1
            what = f"bundle of {len(messages)} messages" if len(messages) > 1 else f"'{messages[0].address}'"
            self._report(sender, "", f"rate limit: {what} dropped (costs {extra + 1} of {self.rate:g}/s; list "
                                     f"and load requests cost more than a ping); slow down")
            return
        for m in messages:
            st.messages += 1
            try:
                self.handler(sender, m)
            except Exception as e:  # a handler bug must not kill the receive thread
                st.handler_errors += 1
                self._report(sender, m.address, f"internal error {type(e).__name__}: {e}")


def osc_client(server: Address, address: str, *args: object, timeout: float = 2.0,
               expect: str | None = None) -> OscMessage | None:
    """Send one message from a fresh socket and wait for one reply (tests, benchmarks)."""
    fam = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(build_message(address, *args), server)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, _ = s.recvfrom(65536)
            except socket.timeout:
                return None
            for m in parse_packet(data):
                if expect is None or m.address == expect:
                    return m
    return None
