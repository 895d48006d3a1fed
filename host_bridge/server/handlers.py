"""The ``/svc`` OSC address space (documented in docs/osc.md).

Handlers run on the OSC receive thread and must be quick: anything that touches files or
loads a model is queued on the session's control worker. Every message is checked for
its type tags and ranges; a problem is answered on ``/svc/error <address> <problem>``.
Parameter addresses are generated from the parameter table.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from host_bridge.server.protocol import OscMessage
from host_bridge.server.session import TOPICS, Address, Session, value_args
from svc_dsp.engine.parameters import PARAMETERS, Parameter
from svc_dsp.errors import SvcError
from svc_dsp.models.catalog import list_catalog
from host_bridge.presets import list_presets

NUMERIC = set("ifdh")
VERSION = "1"


class BadRequest(Exception):
    """A message whose type tags or values do not fit its address."""


def _want(msg: OscMessage, pattern: str, what: str) -> list[Any]:
    """Check type tags: pattern chars 'n' (number), 's' (string), 'b' (bool-ish), '*' (rest any)."""
    tags = msg.tags
    ok = len(tags) == len(pattern)
    if ok:
        for t, p in zip(tags, pattern):
            if (p == "n" and t not in NUMERIC) or (p == "s" and t not in "sS") or \
               (p == "b" and t not in NUMERIC | {"T", "F", "s", "S"}):
                ok = False
    if not ok:
        raise BadRequest(f"expected {what}; received type tags ',{tags}'")
    return msg.args


def _number(v: Any) -> float:
    f = float(v)
    if not math.isfinite(f):
        raise BadRequest(f"value {v!r} is not a finite number")
    return f


def _param_value(p: Parameter, msg: OscMessage) -> Any:
    if p.kind == "float":
        (v,) = _want(msg, "n", f"one number in [{p.minimum:g}, {p.maximum:g}] {p.unit}".rstrip())
        return _number(v)
    if p.kind == "bool":
        (v,) = _want(msg, "b", "one of 1/0, T/F or 'on'/'off'")
        return v
    if p.kind == "choice":
        (v,) = _want(msg, "s", f"one string: {', '.join(p.choices)}")
        return v
    if p.kind == "str":
        (v,) = _want(msg, "s", "one name (empty string or 'default' for the model's default)")
        return None if v in ("", "default") else v
    if p.kind == "mix":
        if msg.tags in ("s", "S") and msg.args[0] in ("", "none"):
            return None
        n = len(msg.tags)
        if n == 0 or n % 2 or any(msg.tags[i] not in "sS" or msg.tags[i + 1] not in NUMERIC for i in range(0, n, 2)):
            raise BadRequest(f"expected name, weight pairs (s f s f ...) or '' for none; received ',{msg.tags}'")
        return {msg.args[i]: _number(msg.args[i + 1]) for i in range(0, n, 2)}
    raise BadRequest(f"parameter kind {p.kind}")


class Router:
    """Address -> handler, built once from the parameter table."""

    def __init__(self, session: Session) -> None:
        self.s = session
        r: dict[str, Callable[[Address, OscMessage], None]] = {
            "/svc/hello": self.hello, "/svc/goodbye": self.goodbye, "/svc/subscribe": self.subscribe,
            "/svc/unsubscribe": self.unsubscribe, "/svc/ping": self.ping, "/svc/status": self.status,
            "/svc/param/list": self.param_list, "/svc/bypass": self._set_named("bypass"),
            "/svc/mix": self._set_named("mix"),
            "/svc/preset/load": self.preset_load, "/svc/preset/save": self.preset_save,
            "/svc/preset/next": self.preset_step(1), "/svc/preset/prev": self.preset_step(-1),
            "/svc/preset/list": self.preset_list, "/svc/model/load": self.model_load,
            "/svc/model/list": self.model_list,
            "/svc/job/submit": self.job_submit, "/svc/job/cancel": self.job_cancel,
            "/svc/midi/learn": self.midi_learn, "/svc/midi/forget": self.midi_forget,
            "/svc/midi/map": self.midi_map, "/svc/midi/note_follow": self.note_follow,
        }
        for name, p in PARAMETERS.items():
            base = f"/svc/param/{name}"
            r[base] = self._set_named(name)
            r[base + "/get"] = self._get(name)
            r[base + "/str"] = self._get(name)
            if p.kind in ("float", "bool", "choice"):
                r[base + "/norm"] = self._set_norm(name)
        self.routes = r

    def __call__(self, src: Address, msg: OscMessage) -> None:
        fn = self.routes.get(msg.address)
        if fn is None:
            near = "/svc/param/<name> with <name> in " + ", ".join(PARAMETERS) if msg.address.startswith(
                "/svc/param/") else "see docs/osc.md (or /svc/param/list)"
            self.s.error(src, msg.address, f"unknown address; {near}")
            return
        try:
            fn(src, msg)
        except (BadRequest, SvcError) as e:
            self.s.error(src, msg.address, str(e))

    # -- session -----------------------------------------------------------------------------
    def hello(self, src: Address, msg: OscMessage) -> None:
        if msg.tags == "s":
            name, port = msg.args[0], 0
        else:
            name, port = _want(msg, "sn", "client name (s) and feedback port (i)")
        port = int(port)
        if not 0 <= port <= 65535:
            raise BadRequest(f"feedback port {port} is outside 0..65535")
        if not name or len(name) > 64:
            raise BadRequest("client name must be 1..64 characters")
        self.s.clients.hello(src, name, port)
        n, ms = self.s.latency()
        self.s.reply(src, "/svc/welcome", "svc-host", VERSION, n, ms, self.s.host.sample_rate)

    def goodbye(self, src: Address, msg: OscMessage) -> None:
        self.s.clients.goodbye(src)

    def _client(self, src: Address):
        c = self.s.clients.get(src)
        if c is None:  # subscribing without hello: feedback goes to the source port
            c = self.s.clients.hello(src, f"{src[0]}:{src[1]}", src[1])
        return c

    def _topics(self, msg: OscMessage) -> set[str]:
        if any(t not in "sS" for t in msg.tags):
            raise BadRequest(f"expected topic names (s ...); received ',{msg.tags}'")
        topics = set(msg.args) or {"all"}
        bad = topics - set(TOPICS) - {"all"}
        if bad:
            raise BadRequest(f"unknown topic(s) {', '.join(sorted(bad))}; topics: {', '.join(TOPICS)}, all")
        return set(TOPICS) if "all" in topics else topics

    def subscribe(self, src: Address, msg: OscMessage) -> None:
        topics = self._topics(msg)
        c = self._client(src)
        c.topics |= topics
        self.s.reply(src, "/svc/subscribed", *sorted(c.topics))
        if "params" in topics:  # a fresh subscriber gets the current state, like a control surface
            for name in PARAMETERS:
                self.s.echo(name, "state", to=[c.reply])

    def unsubscribe(self, src: Address, msg: OscMessage) -> None:
        c = self._client(src)
        c.topics -= self._topics(msg)
        self.s.reply(src, "/svc/subscribed", *sorted(c.topics))

    def ping(self, src: Address, msg: OscMessage) -> None:
        self.s.reply(src, "/svc/pong", *msg.args)

    def status(self, src: Address, msg: OscMessage) -> None:
        for addr, args in self.s.status_messages():
            self.s.reply(src, addr, *args)

    # -- parameters ------------------------------------------------------------------------------
    def _set_named(self, name: str) -> Callable[[Address, OscMessage], None]:
        p = PARAMETERS[name]

        def h(src: Address, msg: OscMessage) -> None:
            if not msg.tags:  # no argument: a query, like AbletonOSC's get
                self._reply_value(src, name)
                return
            self.s.request_param(name, _param_value(p, msg), "osc", src, msg.address)
        return h

    def _set_norm(self, name: str) -> Callable[[Address, OscMessage], None]:
        p = PARAMETERS[name]

        def h(src: Address, msg: OscMessage) -> None:
            (x,) = _want(msg, "n", "one number in [0, 1]")
            x = _number(x)
            if not 0.0 <= x <= 1.0:
                raise BadRequest(f"normalised value {x:g} is outside [0, 1]")
            self.s.request_param(name, p.denormalise(x), "osc", src, msg.address)
        return h

    def _get(self, name: str) -> Callable[[Address, OscMessage], None]:
        def h(src: Address, msg: OscMessage) -> None:
            self._reply_value(src, name)
        return h

    def _reply_value(self, src: Address, name: str) -> None:
        self.s.echo(name, "get", to=[self.s.clients.reply_to(src)])

    def param_list(self, src: Address, msg: OscMessage) -> None:
        for i, (name, p) in enumerate(PARAMETERS.items()):
            lo = float(p.minimum) if p.minimum is not None else 0.0
            hi = float(p.maximum) if p.maximum is not None else 0.0
            self.s.reply(src, "/svc/param/info", i, name, p.kind, p.unit, lo, hi, *value_args(p, p.default)[:1],
                         ",".join(p.choices), p.doc)
        self.s.reply(src, "/svc/param/list/end", len(PARAMETERS))

    # -- presets and models ------------------------------------------------------------------------
    def preset_load(self, src: Address, msg: OscMessage) -> None:
        (name,) = _want(msg, "s", "one preset name from the catalog")
        self.s.worker.submit(lambda: self.s.load_preset(name, "osc"), src, msg.address)

    def preset_save(self, src: Address, msg: OscMessage) -> None:
        (name,) = _want(msg, "s", "one preset name")

        def run() -> None:
            self.s.save_preset(name)
            self.s.reply(src, "/svc/preset/saved", name)
        self.s.worker.submit(run, src, msg.address)

    def preset_step(self, step: int) -> Callable[[Address, OscMessage], None]:
        def h(src: Address, msg: OscMessage) -> None:
            self.s.worker.submit(lambda: self.s.step_preset(step, "osc"), src, msg.address)
        return h

    def preset_list(self, src: Address, msg: OscMessage) -> None:
        def run() -> None:
            names = list_presets()
            for i, n in enumerate(names):
                self.s.reply(src, "/svc/preset/item", i, n)
            self.s.reply(src, "/svc/preset/list/end", len(names), self.s.preset or "")
        self.s.worker.submit(run, src, msg.address)

    def model_load(self, src: Address, msg: OscMessage) -> None:
        (name,) = _want(msg, "s", "one model name from the catalog")
        self.s.worker.submit(lambda: self.s.load_model(name, "osc"), src, msg.address)

    def model_list(self, src: Address, msg: OscMessage) -> None:
        def run() -> None:
            names = list_catalog("models")
            for i, n in enumerate(names):
                self.s.reply(src, "/svc/model/item", i, n)
            self.s.reply(src, "/svc/model/list/end", len(names), self.s.model_name)
        self.s.worker.submit(run, src, msg.address)

    # -- jobs --------------------------------------------------------------------------------------
    def job_submit(self, src: Address, msg: OscMessage) -> None:
        if msg.tags in ("ss", "SS", "sS", "Ss"):
            inp, outp, existing = msg.args[0], msg.args[1], "skip"
        else:
            inp, outp, existing = _want(msg, "sss", "input and output paths relative to the roots (s s) "
                                                    "and optionally skip|overwrite|error")
        if self.s.jobs is None:
            raise BadRequest("render jobs are off; start the server with --input-root DIR --output-root DIR")
        job = self.s.jobs.submit(inp, outp, existing, self.s.clients.reply_to(src))
        self.s.reply(src, "/svc/job/accepted", job.id, inp, outp)
        self.s.jobs.start_planning(job)  # walks the folder off this thread; errors arrive as /svc/job/error

    def job_cancel(self, src: Address, msg: OscMessage) -> None:
        (jid,) = _want(msg, "n", "one job id (i)")
        if self.s.jobs is None:
            raise BadRequest("render jobs are off; start the server with --input-root DIR --output-root DIR")
        self.s.jobs.cancel(int(jid))

    # -- MIDI -----------------------------------------------------------------------------------
    def _midi(self):
        if self.s.midi is None:
            raise BadRequest("MIDI is not available in this server")
        return self.s.midi

    def midi_learn(self, src: Address, msg: OscMessage) -> None:
        (name,) = _want(msg, "s", "one parameter name (or '' to cancel learning)")
        self._midi().arm(name or None, self.s.clients.reply_to(src))
        self.s.reply(src, "/svc/midi/learning", name)

    def midi_forget(self, src: Address, msg: OscMessage) -> None:
        (name,) = _want(msg, "s", "one parameter name")
        self._midi().forget(name)
        self.s.reply(src, "/svc/midi/forgot", name)

    def midi_map(self, src: Address, msg: OscMessage) -> None:
        rows = self._midi().mapping_rows()
        for row in rows:
            self.s.reply(src, "/svc/midi/mapping", *row)
        self.s.reply(src, "/svc/midi/map/end", len(rows))

    def note_follow(self, src: Address, msg: OscMessage) -> None:
        if not msg.tags:
            self.s.reply(src, "/svc/midi/note_follow", int(self._midi().note_follow))
            return
        (on,) = _want(msg, "b", "1/0, T/F or 'on'/'off'")
        self._midi().set_note_follow(PARAMETERS["bypass"].validate(on))
