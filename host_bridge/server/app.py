"""``svc-host serve``: one process owning a streaming engine, an OSC server and MIDI input.

:func:`start` binds the OSC port first (it answers ``/svc/ping`` and ``/svc/status`` and
queues everything else while the model loads, see ``startup.py``); ``Startup.finish`` loads
the model, opens audio and hands the queue to the real router. :func:`build` does both
(also used in-process by tests and the benchmark); :func:`cmd_serve` is the CLI command. Threads: OSC receive, control worker, feedback
(meters at a bounded rate, status once a second), the audio driver's callback (plus the
engine thread in buffered mode), MIDI input, note-follow, one watcher per render job.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_BLOCK = 1024
MAX_METER_RATE = 60.0


@dataclass
class ServeOptions:
    preset: str | None = None
    model: str | None = None
    params: dict | None = None
    host: str = "127.0.0.1"
    osc_port: int = 9000
    allow: tuple[str, ...] = ()
    audio: str = "none"            # "jack", "device", "none" (pump), "off" (no pump: engine idle)
    device: str | None = None
    jack_server: str | None = None
    jack_name: str = "svc-host"
    sample_rate: int = 48000       # pump / PortAudio only; JACK dictates its own
    period: int = 256              # pump / PortAudio period
    block_size: int = DEFAULT_BLOCK
    input_root: str | None = None
    output_root: str | None = None
    midi_port: str | None = None
    rate: float = 1000.0
    burst: float = 2000.0
    meter_rate: float = 20.0
    backend: str = "auto"          # "auto": the fastest the model family and this install have
    hops_per_step: int = 1
    threads: int = 1               # torch intra-op threads for this process (0 = leave torch's default)
    cluster: str | None = None     # render jobs on a Dask cluster (host_bridge.cluster)


class Server:
    """A running server: ``session``, ``transport``, ``host``, ``driver``; ``close()`` stops all."""

    def __init__(self, session: Any, transport: Any, driver: Any, feedback: "Feedback") -> None:
        self.session, self.transport, self.driver, self.feedback = session, transport, driver, feedback
        self.host = session.host

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.address

    def banner(self) -> str:
        n, ms = self.session.latency()
        h = self.host
        mode = "in the audio callback" if h.direct else f"engine thread, {h.block_size}-sample blocks"
        return (f"svc-host serve: OSC on {self.address[0]}:{self.address[1]}, audio: {self.session.driver_name} "
                f"{h.sample_rate} Hz, period {h.period} ({mode})\n"
                f"latency: {n} samples = {ms:.2f} ms at {h.sample_rate} Hz "
                f"(engine {n - h.buffer_delay} + buffering {h.buffer_delay}); "
                f"set the track's delay compensation to this")

    def close(self) -> None:
        self.feedback.stop()
        self.transport.close()
        if self.session.follower is not None:
            self.session.follower.stop()
        if self.session.midi is not None:
            self.session.midi.close()
        if self.driver is not None:
            self.driver.stop()
        self.host.stop()
        if self.session.jobs is not None:
            self.session.jobs.close()
        self.session.close()


class Feedback:
    """Meters to ``meters`` subscribers at ``rate`` Hz (bounded), status to ``status`` once a second."""

    def __init__(self, session: Any, rate: float) -> None:
        self.s = session
        self.interval = 1.0 / min(MAX_METER_RATE, max(1.0, rate))
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="svc-feedback", daemon=True)
        self._t.start()

    def _run(self) -> None:
        last_status = 0.0
        while not self._stop.wait(self.interval):
            subs = self.s.clients.subscribers("meters")
            if subs:
                m = self.s.host.read_meters()
                for to in subs:
                    self.s.send(to, "/svc/meter", *m)
            now = time.monotonic()
            if now - last_status >= 1.0:
                last_status = now
                subs = self.s.clients.subscribers("status")
                if subs:
                    msgs = self.s.status_messages()
                    for to in subs:
                        for addr, args in msgs:
                            self.s.send(to, addr, *args)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(timeout=2)


class Startup:
    """A server whose OSC port is bound and answering while the rest loads (``finish``)."""

    def __init__(self, opts: ServeOptions, transport: Any, gate: Any) -> None:
        self.opts, self.transport, self.gate = opts, transport, gate

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.address

    def banner(self) -> str:
        return (f"svc-host serve: OSC on {self.address[0]}:{self.address[1]}, loading the model "
                f"(/svc/ping and /svc/status answer meanwhile; other messages wait for it)")

    def finish(self, *, source: Any = None) -> Server:
        """Load the model, open audio, start everything, replay the OSC queue. ``source``: pump
        input (tests). On failure the OSC port is closed and the error raised."""
        try:
            return _finish(self.opts, self.transport, self.gate, source)
        except BaseException:
            self.transport.close()
            raise


def start(opts: ServeOptions) -> Startup:
    """Bind and start OSC (light imports only: no torch yet); see :class:`Startup`."""
    from host_bridge.server.osc import AllowList, OscTransport
    from host_bridge.server.startup import LoadingGate
    from svc_dsp.errors import SvcError

    if opts.host not in ("127.0.0.1", "::1", "localhost") and not opts.allow:
        raise SvcError(f"--host {opts.host} exposes the server beyond this machine; name the clients allowed "
                       f"to control it with --allow ADDR (e.g. --allow 192.168.1.20 or 192.168.1.0/24)")
    gate = LoadingGate()
    transport = OscTransport(opts.host, opts.osc_port, gate, allow=AllowList(opts.allow), rate=opts.rate,
                             burst=opts.burst, on_error=gate.error)
    gate.transport = transport
    transport.start()
    return Startup(opts, transport, gate)


def build(opts: ServeOptions, *, source: Any = None) -> Server:
    """Bind OSC, load the model, open audio, start everything. ``source``: pump input (tests)."""
    return start(opts).finish(source=source)


def _finish(opts: ServeOptions, transport: Any, gate: Any, source: Any) -> Server:
    from host_bridge.presets import load_preset
    from svc_dsp.engine.parameters import validate_all
    from svc_dsp.errors import SvcError

    gate.set_stage("model", 0.1)
    values: dict[str, Any] = {}
    preset_name = None
    if opts.model:
        model_ref = opts.model
    else:
        from host_bridge.resolve import model_folder

        pr = load_preset(opts.preset or "demo", allow_path=True)
        model_ref, preset_name = pr.model, pr.name
        values.update(pr.parameters)
        model_ref = model_folder(model_ref, allow_path=False)  # a preset names a catalog model
    values.update(opts.params or {})
    values = validate_all(values)

    from host_bridge.server.audio_io import EngineHost  # the heavy imports (torch) start here
    from host_bridge.server.drivers import JackDriver, PortAudioDriver, PumpDriver
    from host_bridge.server.handlers import Router
    from host_bridge.server.jobs import JobManager
    from host_bridge.server.midi import MidiMapper, NoteFollower
    from host_bridge.server.session import Session
    from svc_dsp.engine.streaming import StreamingConverter
    from svc_dsp.models.catalog import load_model

    if opts.threads > 0:  # torch's default (one per core) stalls the audio thread on a loaded machine
        import torch

        torch.set_num_threads(opts.threads)
    gate.set_stage("model", 0.3)
    model = load_model(model_ref)
    model_name = Path(model_ref).name if ("/" in model_ref or Path(model_ref).is_dir()) else model_ref

    gate.set_stage("audio", 0.6)
    driver: Any
    if opts.audio == "jack":
        driver = JackDriver(opts.jack_name, opts.jack_server)
    elif opts.audio == "device":
        driver = PortAudioDriver(opts.device or "default", opts.sample_rate, opts.period)
    else:
        driver = PumpDriver(opts.sample_rate, opts.period, source)
    sr, period = driver.sample_rate, driver.period
    block = opts.block_size if opts.block_size > period else 0
    max_block = max(block, period, 64)

    def make_converter(m: Any, vals: dict[str, Any]) -> Any:
        kw = {k: v for k, v in vals.items() if v is not None}
        hops = opts.hops_per_step if m.regime == "stateful" else 1
        return StreamingConverter(m, sr, max_block, backend=opts.backend, hops_per_step=hops, **kw)

    gate.set_stage("engine", 0.75)
    try:
        host = EngineHost(make_converter(model, values), sr, period, block)
        session = Session(model, model_name, values, host, preset=preset_name, make_converter=make_converter)
        session.driver_name = driver.name if opts.audio != "off" else "off"
    except BaseException:
        if opts.audio == "jack":
            driver.stop()
        raise
    session.transport = transport
    try:
        if opts.input_root or opts.output_root:
            if not (opts.input_root and opts.output_root):
                raise SvcError("render jobs need both --input-root DIR and --output-root DIR")
            session.jobs = JobManager(session, Path(opts.input_root), Path(opts.output_root))
            if opts.cluster:
                from host_bridge.cluster import check_cluster

                session.jobs.cluster = check_cluster(opts.cluster)
        session.midi = MidiMapper(session)
        session.follower = NoteFollower(session, host, tuple(getattr(model, "f0_range", (50.0, 1100.0))))
        if opts.midi_port:
            session.midi.open(opts.midi_port)
    except BaseException:
        session.close()
        if opts.audio == "jack":
            driver.stop()
        raise
    host.start()
    if opts.audio != "off":
        driver.start(host)
        if hasattr(driver, "latency_changed"):
            session.latency_listeners.append(lambda _n: driver.latency_changed())
    transport.on_error, transport.backoff = session.error, host.behind
    router = Router(session)
    gate.ready(router)  # what came during loading, in arrival order; then everything goes straight on
    transport.handler = router
    return Server(session, transport, driver if opts.audio != "off" else None, Feedback(session, opts.meter_rate))


# -- CLI -----------------------------------------------------------------------------------
def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME", help="catalog preset to start with (default: demo)")
    src.add_argument("--model", metavar="DIR|NAME", help="model folder or catalog name (local use only)")
    p.add_argument("--osc-port", type=int, default=9000, metavar="PORT", help="UDP port (default 9000; 0 = any free)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --allow)")
    p.add_argument("--allow", action="append", default=[], metavar="ADDR",
                   help="client IP or network allowed besides loopback (repeatable)")
    a = p.add_mutually_exclusive_group()
    a.add_argument("--jack", dest="audio", action="store_const", const="jack", help="audio through JACK ports")
    a.add_argument("--device", metavar="NAME", help="audio through a PortAudio device (sounddevice)")
    a.add_argument("--no-audio", dest="audio", action="store_const", const="none",
                   help="no audio device: an internal pump feeds silence at real-time pace")
    p.add_argument("--jack-server", metavar="NAME", help="JACK server name (default: the default server)")
    p.add_argument("--jack-name", default="svc-host", metavar="NAME", help="JACK client name (default svc-host)")
    p.add_argument("--sample-rate", type=int, default=48000, metavar="HZ", help="pump/PortAudio rate (default 48000)")
    p.add_argument("--period", type=int, default=256, metavar="N", help="pump/PortAudio period (default 256)")
    p.add_argument("--block-size", type=int, default=DEFAULT_BLOCK, metavar="N",
                   help=f"engine block (default {DEFAULT_BLOCK}); 0 or the period = run the engine in the "
                        f"audio callback (lowest latency, needs a fast CPU)")
    p.add_argument("--input-root", metavar="DIR", help="render jobs read only below this folder")
    p.add_argument("--output-root", metavar="DIR", help="render jobs write only below this folder")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT|local:N",
                   help="render jobs go to this Dask cluster (docs/cluster.md); workers share both roots' storage")
    p.add_argument("--midi-port", metavar="NAME", help="MIDI input port to open (mido)")
    p.add_argument("--rate-limit", type=float, default=1000.0, metavar="N",
                   help="OSC messages per second per sender (default 1000; 0 = off)")
    p.add_argument("--burst", type=float, default=2000.0, metavar="N", help="token bucket size (default 2000)")
    p.add_argument("--meter-rate", type=float, default=20.0, metavar="HZ", help="meter messages per second (max 60)")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="engine runtime (default auto: onnx where onnxruntime is installed and the model family "
                        "has an ONNX runtime, else torch)")
    p.add_argument("--hops-per-step", type=int, default=1, metavar="N",
                   help="model hops computed per engine step: 2 adds one hop of latency and halves per-step "
                        "overhead (with --backend onnx: 21.5 ms at RTF ~0.19 here)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch intra-op threads (default 1; 0 = torch's default, one per core)")
    p.set_defaults(audio="none")


def cmd_serve(args: argparse.Namespace, params: dict[str, Any]) -> int:
    audio = "device" if args.device else args.audio
    opts = ServeOptions(preset=args.preset, model=args.model, params=params, host=args.host,
                        osc_port=args.osc_port, allow=tuple(args.allow), audio=audio, device=args.device,
                        jack_server=args.jack_server, jack_name=args.jack_name, sample_rate=args.sample_rate,
                        period=args.period, block_size=args.block_size, input_root=args.input_root,
                        output_root=args.output_root, midi_port=args.midi_port, rate=args.rate_limit,
                        burst=args.burst, meter_rate=args.meter_rate, backend=args.backend,
                        hops_per_step=args.hops_per_step, threads=args.threads,
                        cluster=getattr(args, "cluster", None))
    sys.setswitchinterval(0.001)  # the audio callback waits at most ~1 ms for the GIL
    try:
        startup = start(opts)
    except (RuntimeError, OSError, ValueError) as e:
        print(f"svc-host serve: {e}", file=sys.stderr)
        return 2
    print(startup.banner(), flush=True)
    try:
        server = startup.finish()
    except (RuntimeError, OSError, ValueError) as e:
        print(f"svc-host serve: {e}", file=sys.stderr)
        return 2
    print(server.banner(), flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        x = server.host.xruns
        server.close()
        print(f"svc-host serve: stopped; {x} xruns", file=sys.stderr, flush=True)
    return 0
