"""Audio drivers that call :meth:`EngineHost.process_period`: the real-time pump
(--no-audio), JACK (JACK-Client) and PortAudio (sounddevice). Each exposes
``sample_rate``, ``period``, ``start(host)`` and ``stop()``; heavy or optional imports
happen in the constructor, with an error message that says what to install.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import numpy as np

from host_bridge.server.audio_io import EngineHost


class PumpDriver:
    """--no-audio: a thread that calls the host at real-time pace (input: ``source`` or silence)."""

    name = "pump"

    def __init__(self, sample_rate: int = 48000, period: int = 256,
                 source: Callable[[int], np.ndarray] | None = None) -> None:
        self.sample_rate, self.period = int(sample_rate), int(period)
        self.source = source
        self.late = 0
        self._host: EngineHost | None = None
        self._running = False
        self._thread: threading.Thread | None = None

    def start(self, host: EngineHost) -> None:
        self._host, self._running = host, True
        self._thread = threading.Thread(target=self._loop, name="svc-audio-pump", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        n, host = self.period, self._host
        assert host is not None
        silence = np.zeros(n, np.float32)
        out = np.zeros(n, np.float32)
        dt = n / self.sample_rate
        nxt = time.monotonic()
        while self._running:
            inp = silence if self.source is None else self.source(n)
            host.process_period(inp, out)
            nxt += dt
            wait = nxt - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            elif wait < -10 * dt:  # far behind (machine stalled): count it, do not burst to catch up
                self.late += 1
                host.driver_xruns += 1
                nxt = time.monotonic()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=2)


class JackDriver:
    """JACK client with one input and one output port (``<name>:in``, ``<name>:out``)."""

    name = "jack"

    def __init__(self, client_name: str = "svc-host", server: str | None = None) -> None:
        try:
            import jack
        except (ImportError, OSError) as e:
            raise RuntimeError(f"--jack needs the JACK-Client package and libjack ({e}); "
                               f"pip install JACK-Client; libjack on Debian: apt-get install libjack-jackd2-0 "
                               f"(scripts/install-system-deps.sh); or use --device / --no-audio") from None
        self._jack = jack
        try:
            self.client = jack.Client(client_name, servername=server, no_start_server=True)
        except jack.JackOpenError:
            raise RuntimeError(f"cannot connect to the JACK server{' ' + repr(server) if server else ''}; "
                               f"start jackd (e.g. jackd -d alsa) or use --no-audio") from None
        self.inport = self.client.inports.register("in")
        self.outport = self.client.outports.register("out")
        self.sample_rate, self.period = self.client.samplerate, self.client.blocksize
        self._host: EngineHost | None = None
        self._latency_cb: Any = None

    def start(self, host: EngineHost) -> None:
        self._host = host
        inport, outport = self.inport, self.outport

        # Indices count callbacks, not JACK's frame clock: a late callback still carries exactly
        # its own cycle's buffers, while the clock read inside it may already show the next cycle.
        def process(frames: int) -> None:
            try:
                host.process_period(inport.get_array(), outport.get_array())
            except Exception:  # never raise into JACK; counted and reported as an xrun
                host.callback_errors += 1

        def xrun(delay_usecs: float) -> None:
            host.driver_xruns += 1

        self.client.set_process_callback(process)
        self.client.set_xrun_callback(xrun)
        self._latency_cb = _publish_latency(self._jack, self.client, inport, outport, lambda: host.latency_samples)
        self.client.activate()

    def latency_changed(self) -> None:
        if self._latency_cb is not None:
            self._latency_cb.recompute()

    def stop(self) -> None:
        try:
            self.client.deactivate()
            self.client.close()
        except Exception:
            pass


class _publish_latency:
    """Tell JACK our latency (jack_set_latency_callback), so JACK-aware hosts such as Ardour
    compensate it automatically. JACK-Client 0.5 does not wrap the latency API; we call
    libjack through ctypes on the same handles. Without this JACK would assume zero latency.
    """

    def __init__(self, jack: Any, client: Any, inport: Any, outport: Any, latency: Callable[[], int]) -> None:
        import ctypes

        class Range(ctypes.Structure):
            _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]

        lib = ctypes.CDLL("libjack.so.0")
        cb_type = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)
        lib.jack_set_latency_callback.argtypes = [ctypes.c_void_p, cb_type, ctypes.c_void_p]
        for f in (lib.jack_port_get_latency_range, lib.jack_port_set_latency_range):
            f.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(Range)]
        lib.jack_recompute_total_latencies.argtypes = [ctypes.c_void_p]
        ptr = lambda o: int(jack._ffi.cast("uintptr_t", o._ptr))  # noqa: E731
        self._lib, self._client = lib, ptr(client)
        cin, cout = ptr(inport), ptr(outport)
        capture, playback = 0, 1  # JackCaptureLatency, JackPlaybackLatency

        def on_latency(mode: int, arg: Any) -> None:
            r = Range()
            extra = latency()
            if mode == capture:  # output port: upstream capture latency + ours
                lib.jack_port_get_latency_range(cin, capture, ctypes.byref(r))
                r.min, r.max = r.min + extra, r.max + extra
                lib.jack_port_set_latency_range(cout, capture, ctypes.byref(r))
            else:  # input port: downstream playback latency + ours
                lib.jack_port_get_latency_range(cout, playback, ctypes.byref(r))
                r.min, r.max = r.min + extra, r.max + extra
                lib.jack_port_set_latency_range(cin, playback, ctypes.byref(r))

        self._range = Range
        self._cb = cb_type(on_latency)  # kept referenced: JACK calls it for the client's lifetime
        lib.jack_set_latency_callback(self._client, self._cb, None)

    def recompute(self) -> None:
        self._lib.jack_recompute_total_latencies(self._client)


def port_latency(jack: Any, port: Any, mode: int) -> tuple[int, int]:
    """(min, max) latency of a JACK-Client port; mode 0 = capture, 1 = playback."""
    import ctypes

    class Range(ctypes.Structure):
        _fields_ = [("min", ctypes.c_uint32), ("max", ctypes.c_uint32)]

    lib = ctypes.CDLL("libjack.so.0")
    lib.jack_port_get_latency_range.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(Range)]
    r = Range()
    lib.jack_port_get_latency_range(int(jack._ffi.cast("uintptr_t", port._ptr)), mode, ctypes.byref(r))
    return int(r.min), int(r.max)


class PortAudioDriver:
    """PortAudio device (sounddevice), mono in/out; for macOS/Windows virtual devices."""

    name = "portaudio"

    def __init__(self, device: str, sample_rate: int | None = None, period: int = 256) -> None:
        try:
            import sounddevice as sd
        except (ImportError, OSError) as e:
            raise RuntimeError(f"--device needs the sounddevice package and the PortAudio library ({e}); "
                               f"pip install sounddevice, or use --jack / --no-audio") from None
        self._sd = sd
        info = sd.query_devices(device)
        self.device = device
        self.sample_rate = int(sample_rate or info["default_samplerate"])
        self.period = int(period)
        self.stream: Any = None

    def start(self, host: EngineHost) -> None:
        def callback(indata: Any, outdata: Any, frames: int, t: Any, status: Any) -> None:
            if status:
                host.driver_xruns += 1
            try:
                host.process_period(indata[:, 0], outdata[:, 0])
            except Exception:
                host.callback_errors += 1
                outdata.fill(0)

        self.stream = self._sd.Stream(device=self.device, samplerate=self.sample_rate, blocksize=self.period,
                                      channels=1, dtype="float32", callback=callback)
        self.stream.start()

    def stop(self) -> None:
        if self.stream is not None:
            self.stream.stop()
            self.stream.close()
