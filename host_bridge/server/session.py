"""The server's state: one model, one streaming engine, clients.

The parameter values are the engine's own (:attr:`EngineHost.store`, the running
``StreamingConverter``'s store): the session keeps no copy. Every parameter change — from OSC,
MIDI, note-follow or a preset load — goes through :meth:`Session.set_param`, which hands it to
that store (validated there once, set with one atomic swap) and echoes it to every client
subscribed to ``params``. Slow work
(loading a model, reading or writing presets) runs on the control worker thread, never on
the OSC receive thread (so ``/svc/ping`` stays prompt) and never on the audio thread.
"""
from __future__ import annotations

import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from host_bridge.presets import list_presets, load_preset, save_preset
from host_bridge.resolve import model_folder
from svc_dsp.engine.parameters import PARAMETERS, Parameter, defaults, parameter
from svc_dsp.engine.processor import carry_values
from svc_dsp.errors import CatalogError, SvcError
from svc_dsp.models.catalog import load_model
from svc_dsp.models.catalog import list_catalog, user_root

Address = tuple[str, int]
TOPICS = ("params", "status", "meters", "jobs", "presets", "midi")
MAX_CLIENTS = 32
PRESET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def value_args(p: Parameter, v: Any) -> list[Any]:
    """A parameter value as OSC arguments (bool -> 0/1 int, None -> '', mix -> name, weight pairs)."""
    if p.kind == "float":
        return [float(v)]
    if p.kind == "bool":
        return [1 if v else 0]
    if p.kind == "mix":
        return [""] if not v else [x for k, w in v.items() for x in (k, float(w))]
    return ["" if v is None else str(v)]


@dataclass
class Client:
    name: str
    reply: Address
    topics: set[str] = field(default_factory=set)


class Clients:
    """Known clients by source address; replies go to the feedback port a client declared."""

    def __init__(self) -> None:
        self._by_src: dict[Address, Client] = {}
        self._lock = threading.Lock()

    def hello(self, src: Address, name: str, port: int) -> Client:
        with self._lock:
            c = self._by_src.pop(src, None) or Client(name, src)
            c.name, c.reply = name, (src[0], port or src[1])
            self._by_src[src] = c
            while len(self._by_src) > MAX_CLIENTS:  # oldest hello goes first
                self._by_src.pop(next(iter(self._by_src)))
            return c

    def get(self, src: Address) -> Client | None:
        return self._by_src.get(src)

    def goodbye(self, src: Address) -> None:
        with self._lock:
            self._by_src.pop(src, None)

    def reply_to(self, src: Address) -> Address:
        c = self._by_src.get(src)
        return c.reply if c else src

    def subscribers(self, topic: str) -> list[Address]:
        return [c.reply for c in list(self._by_src.values()) if topic in c.topics]


class ControlWorker:
    """One thread for slow control work (model loads, preset files); bounded queue."""

    def __init__(self, on_error: Callable[[Address | None, str, str], None]) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=32)
        self._on_error = on_error
        self._t = threading.Thread(target=self._run, name="svc-control", daemon=True)
        self._t.start()

    def submit(self, fn: Callable[[], None], sender: Address | None, address: str) -> None:
        try:
            self._q.put_nowait((fn, sender, address))
        except queue.Full:
            self._on_error(sender, address, "server busy: too many pending control requests; retry shortly")

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fn, sender, address = item
            try:
                fn()
            except SvcError as e:
                self._on_error(sender, address, str(e))
            except Exception as e:
                self._on_error(sender, address, f"internal error {type(e).__name__}: {e}")

    def stop(self) -> None:
        self._q.put(None)
        self._t.join(timeout=5)


class Session:
    """Model + engine + clients. Created by :func:`host_bridge.server.app.build`.

    ``values``: those ``host``'s converter was built with (any that differ are set on it);
    ``make_converter(model, values)`` builds the converter a model or ``f0_method`` change swaps in.
    """

    def __init__(self, model: Any, model_name: str, values: dict[str, Any], host: Any, *,
                 preset: str | None = None, make_converter: Callable[[Any, dict[str, Any]], Any]) -> None:
        self.model, self.model_name = model, model_name
        self.host = host
        differ = {k: v for k, v in values.items() if host.store.get(k) != v}
        if differ:
            host.set_params(differ)
        self.preset = preset
        self.make_converter = make_converter
        self.clients = Clients()
        self.transport: Any = None          # OscTransport, set by app.build
        self.jobs: Any = None               # JobManager or None
        self.midi: Any = None               # MidiMapper
        self.follower: Any = None           # NoteFollower
        self.listeners: list[Callable[[str, Any, str], None]] = []  # (name, value, source) after a change
        # called with the new total latency (samples) after a model swap changed it; the JACK
        # driver re-publishes its port latency from here so hosts re-compensate
        self.latency_listeners: list[Callable[[int], None]] = []
        self._lock = threading.RLock()
        self.worker = ControlWorker(self.error)
        self.started = time.monotonic()

    # -- sending ----------------------------------------------------------------------------
    def send(self, to: Address, address: str, *args: Any) -> None:
        if self.transport is not None:
            self.transport.send(to, address, *args)

    def reply(self, src: Address, address: str, *args: Any) -> None:
        self.send(self.clients.reply_to(src), address, *args)

    def broadcast(self, topic: str, address: str, *args: Any) -> None:
        for to in self.clients.subscribers(topic):
            self.send(to, address, *args)

    def error(self, src: Address | None, address: str, problem: str) -> None:
        """``/svc/error <address> <problem>`` to the client that caused it."""
        if src is not None:
            self.reply(src, "/svc/error", address, problem)

    # -- parameters ---------------------------------------------------------------------------
    @property
    def values(self) -> dict[str, Any]:
        """A copy of the current values (the engine's store)."""
        return self.host.store.values

    def set_param(self, name: str, value: Any, source: str = "osc") -> Any:
        """Set in the engine's store (validated there: table range, the model's speakers), echo.
        Raises ParameterError with the allowed range, UnknownSpeakerError with the model's speakers."""
        p = parameter(name)
        with self._lock:
            if p.name == "f0_method" and p.validate(value) != self.host.store.get(p.name):
                # the tracker is built with the engine: a new one is swapped in
                self._install(self.model, dict(self.values, f0_method=p.validate(value)))
                v = self.host.store.get(p.name)
            else:
                v = self.host.set_param(p.name, value)
        self.echo(p.name, source)
        return v

    def request_param(self, name: str, value: Any, source: str = "osc", sender: Address | None = None,
                      address: str = "") -> None:
        """``set_param`` from a receive or MIDI thread: a change of ``f0_method`` rebuilds the
        engine, so it runs on the control worker (errors go back to ``sender``)."""
        if parameter(name).name == "f0_method":
            self.worker.submit(lambda: self.set_param(name, value, source), sender, address)
        else:
            self.set_param(name, value, source)

    def echo(self, name: str, source: str = "osc", to: list[Address] | None = None) -> None:
        p = PARAMETERS[name]
        v = self.host.store.get(name)
        targets = self.clients.subscribers("params") if to is None else to
        base = f"/svc/param/{name}"
        for addr in targets:
            self.send(addr, base, *value_args(p, v))
            if p.kind in ("float", "bool", "choice"):
                self.send(addr, base + "/norm", float(p.normalise(v)))
            self.send(addr, base + "/str", p.to_text(v))
        for fn in self.listeners:
            fn(name, v, source)

    def latency(self) -> tuple[int, float]:
        n = self.host.latency_samples
        return n, 1000.0 * n / self.host.sample_rate

    # -- models and presets -----------------------------------------------------------------
    def _install(self, model: Any, values: dict[str, Any]) -> None:
        """Build a converter for ``model`` with ``values`` and swap it in (worker thread)."""
        old_latency = self.host.latency_samples
        conv = self.make_converter(model, values)
        self.host.swap_converter(conv)
        self.model = model
        if self.host.latency_samples != old_latency:
            n, ms = self.latency()
            for fn in self.latency_listeners:
                fn(n)
            self.broadcast("status", "/svc/status/latency", n, ms)

    def load_model(self, name: str, source: str = "osc") -> None:
        """Catalog model by name (never a path); keeps parameter values that still apply."""
        model = load_model(model_folder(name, allow_path=False))
        with self._lock:
            old = self.values
            vals, dropped = carry_values(model, old)
            self._install(model, vals)
            self.model_name = name
            changed = [k for k in PARAMETERS if vals[k] != old[k]]
        for k in changed:
            self.echo(k, source)
        self.broadcast("presets", "/svc/model/current", name)
        if dropped:
            for to in self.clients.subscribers("params"):
                self.send(to, "/svc/error", "/svc/model/load",
                          f"model '{name}' lacks the selected {' and '.join(dropped)}; reset to the model's default")

    def load_preset(self, name: str, source: str = "osc") -> None:
        pr = load_preset(name)  # catalog names only
        vals = defaults()
        vals.update(pr.parameters)
        with self._lock:
            old = self.values
            if pr.model != self.model_name or vals["f0_method"] != old["f0_method"]:
                model = (self.model if pr.model == self.model_name
                         else load_model(model_folder(pr.model, allow_path=False)))
                self._install(model, vals)
                self.model_name = pr.model
                changed = list(PARAMETERS)
                self.broadcast("presets", "/svc/model/current", pr.model)
            else:
                changed = [k for k in PARAMETERS if vals[k] != old[k]]
                self.host.set_params({k: vals[k] for k in changed})  # one swap
            self.preset = pr.name
        for k in changed:
            self.echo(k, source)
        self.broadcast("presets", "/svc/preset/current", pr.name)

    def save_preset(self, name: str) -> Path:
        if not PRESET_NAME.match(name):
            raise CatalogError(f"preset name {name!r}: use 1-64 letters, digits, '_', '-', '.' (no paths)")
        if self.model_name not in list_catalog("models"):
            raise CatalogError(f"the current model '{self.model_name}' is not in the catalog; presets can only "
                               f"name catalog models (install it under <root>/models/)")
        path = save_preset(user_root() / "presets" / f"{name}.toml", self.model_name, dict(self.values))
        self.preset = name
        self.broadcast("presets", "/svc/preset/current", name)
        return path

    def step_preset(self, step: int, source: str = "osc") -> None:
        names = list_presets()
        if not names:
            raise CatalogError("no presets in the catalog; save one with /svc/preset/save NAME")
        i = names.index(self.preset) + step if self.preset in names else (0 if step > 0 else -1)
        self.load_preset(names[i % len(names)], source)

    def preset_by_index(self, index: int, source: str = "midi") -> None:
        names = list_presets()
        if not 0 <= index < len(names):
            raise CatalogError(f"preset number {index} does not exist; the catalog has {len(names)} presets "
                               f"(0..{len(names) - 1}, sorted by name)")
        self.load_preset(names[index], source)

    # -- status ---------------------------------------------------------------------------------
    def status_messages(self) -> list[tuple[str, list[Any]]]:
        h = self.host
        n, ms = self.latency()
        st = self.transport.stats if self.transport is not None else None
        out: list[tuple[str, list[Any]]] = [
            ("/svc/status/latency", [n, ms]),
            ("/svc/status/sample_rate", [h.sample_rate]),
            ("/svc/status/block_size", [h.block_size, h.period]),
            ("/svc/status/rtf", [float(h.rtf_ema), float(h.rtf_max)]),
            ("/svc/status/xruns", [h.xruns, h.underruns, h.overruns, h.driver_xruns, h.callback_errors,
                                   int(getattr(h.converter, "xruns", 0))]),
            ("/svc/status/audio", [getattr(self, "driver_name", "none"), h.frames, h.blocks]),
            ("/svc/status/model", [self.model_name, self.preset or ""]),
        ]
        if st is not None:
            out.append(("/svc/status/osc", [st.datagrams, st.malformed, st.oversize, st.rate_limited, st.denied]))
        out.append(("/svc/status/end", []))
        return out

    def close(self) -> None:
        self.worker.stop()

