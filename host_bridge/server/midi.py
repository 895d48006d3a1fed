"""MIDI input: learn, 14-bit CC, program change + bank select -> presets, note-follow.

* **Learn**: ``/svc/midi/learn <param>`` arms learning; the next control change (any
  channel, CC 1..31 or 33..127 except bank select 0/32) is bound to that parameter. A
  binding maps 0..127 (or 0..16383) onto the parameter's normalised 0..1 range.
* **14-bit CC**: for a bound CC ``n`` < 32, a CC ``n + 32`` on the same channel is its LSB
  (MIDI 1.0). Once an LSB has been seen the binding is 14-bit: an MSB is held until its
  LSB arrives and the pair is applied as ``(msb * 128 + lsb) / 16383`` — no coarse step in
  between. A controller that only sends MSBs stays 7-bit.
* **Program change / bank select**: preset number ``(bank_msb * 128 + bank_lsb) * 128 +
  program`` indexes the catalog presets sorted by name (``/svc/preset/list`` shows the order).
* **Note-follow** (``/svc/midi/note_follow 1``): while a note is held (last note wins), the
  :class:`NoteFollower` tracks the input F0 and sets ``transpose = 12 * log2(f_note / f0)``
  so the converted voice lands on the note; see its docstring. Releasing every note
  restores the transpose that was set before the first note went down.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from host_bridge.server.audio_io import ring_read
from svc_dsp.engine.parameters import PARAMETERS
from svc_dsp.errors import ParameterError, SvcError
from svc_dsp.features.f0 import get_f0_tracker

Address = tuple[str, int]


@dataclass
class Binding:
    param: str
    channel: int
    cc: int
    hi_res: bool = False


class MidiMapper:
    """Turns mido messages into parameter changes. ``handle`` may be called from any thread."""

    def __init__(self, session: Any) -> None:
        self.s = session
        self.bindings: dict[tuple[int, int], Binding] = {}
        self.learning: str | None = None
        self._learn_reply: Address | None = None
        self._msb: dict[tuple[int, int], int] = {}
        self._bank: dict[int, list[int]] = {}
        self.held: list[int] = []
        self.note_follow = False
        self.port: Any = None
        self._lock = threading.Lock()

    # -- control from OSC -------------------------------------------------------------------
    def arm(self, name: str | None, reply: Address | None = None) -> None:
        if name is not None:
            p = PARAMETERS.get(name)
            if p is None or p.kind not in ("float", "bool", "choice"):
                ok = [n for n, q in PARAMETERS.items() if q.kind in ("float", "bool", "choice")]
                raise ParameterError(f"cannot MIDI-learn '{name}'; learnable parameters: {', '.join(ok)}")
        self.learning, self._learn_reply = name, reply

    def forget(self, name: str) -> None:
        with self._lock:
            for k in [k for k, b in self.bindings.items() if b.param == name]:
                del self.bindings[k]

    def mapping_rows(self) -> list[list[Any]]:
        return [[b.param, b.channel + 1, b.cc, 14 if b.hi_res else 7] for b in self.bindings.values()]

    def set_note_follow(self, on: bool) -> None:
        self.note_follow = bool(on)
        f = self.s.follower
        if f is not None:
            if on:
                f.start()
                if self.held:
                    f.hold(self.held[-1])
            else:
                f.stop()
        self.s.broadcast("midi", "/svc/midi/note_follow", int(self.note_follow))

    # -- ports ---------------------------------------------------------------------------------
    def open(self, name: str) -> None:
        import mido

        try:
            self.port = mido.open_input(name, callback=self.handle)
        except Exception as e:  # rtmidi raises SystemError/OSError without ALSA or JACK MIDI
            try:
                names = ", ".join(mido.get_input_names()) or "none"
            except Exception:
                names = "unknown (no MIDI backend)"
            raise SvcError(f"cannot open MIDI input '{name}' ({type(e).__name__}: {e}); available: {names}") from None

    def close(self) -> None:
        if self.port is not None:
            self.port.close()

    # -- messages ------------------------------------------------------------------------------
    def handle(self, msg: Any) -> None:
        t = msg.type
        try:
            if t == "control_change":
                self._cc(msg.channel, msg.control, msg.value)
            elif t == "program_change":
                bank = self._bank.get(msg.channel, [0, 0])
                index = (bank[0] * 128 + bank[1]) * 128 + msg.program
                self.s.worker.submit(lambda: self._guard(lambda: self.s.preset_by_index(index, "midi"),
                                                         "/svc/midi/program"), None, "/svc/midi/program")
            elif t == "note_on" and msg.velocity > 0:
                self._note_on(msg.note)
            elif t in ("note_off", "note_on"):
                self._note_off(msg.note)
        except SvcError as e:
            self._report("/svc/midi", str(e))

    def _guard(self, fn: Any, where: str) -> None:
        try:
            fn()
        except SvcError as e:
            self._report(where, str(e))

    def _report(self, where: str, problem: str) -> None:
        for to in self.s.clients.subscribers("midi"):
            self.s.send(to, "/svc/error", where, problem)

    def _cc(self, ch: int, cc: int, value: int) -> None:
        if cc in (0, 32):  # bank select MSB / LSB
            self._bank.setdefault(ch, [0, 0])[0 if cc == 0 else 1] = value
            return
        with self._lock:
            if self.learning is not None:
                lsb_of = self.bindings.get((ch, cc - 32)) if 32 < cc < 64 else None
                if lsb_of is not None and lsb_of.param == self.learning:
                    return  # the LSB right after the learned MSB; handled below once learning ends
                name = self.learning
                for k in [k for k, b in self.bindings.items() if b.param == name or k == (ch, cc)]:
                    del self.bindings[k]
                self.bindings[(ch, cc)] = Binding(name, ch, cc)
                self.learning = None
                reply, self._learn_reply = self._learn_reply, None
                targets = set(self.s.clients.subscribers("midi")) | ({reply} if reply else set())
                for to in targets:
                    self.s.send(to, "/svc/midi/learned", name, ch + 1, cc)
                self._msb[(ch, cc)] = value
                self._apply(self.bindings[(ch, cc)], value / 127.0)
                return
            b = self.bindings.get((ch, cc))
            if b is not None:
                self._msb[(ch, cc)] = value
                if not b.hi_res:
                    self._apply(b, value / 127.0)
                return  # 14-bit: wait for the LSB
            if 32 < cc < 64:
                b = self.bindings.get((ch, cc - 32))
                if b is not None:
                    b.hi_res = True
                    msb = self._msb.get((ch, cc - 32), 0)
                    self._apply(b, (msb * 128 + value) / 16383.0)

    def _apply(self, b: Binding, x: float) -> None:
        p = PARAMETERS[b.param]
        self.s.request_param(b.param, p.denormalise(x), "midi")

    def _note_on(self, note: int) -> None:
        if note in self.held:
            self.held.remove(note)
        self.held.append(note)
        if self.note_follow and self.s.follower is not None:
            self.s.follower.hold(note)

    def _note_off(self, note: int) -> None:
        if note in self.held:
            self.held.remove(note)
        if self.note_follow and self.s.follower is not None:
            if self.held:
                self.s.follower.hold(self.held[-1])
            else:
                self.s.follower.release()


def note_hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


class NoteFollower:
    """Sets ``transpose`` so the tracked input F0 lands on the held note.

    A control thread (never the audio thread) reads the engine host's input ring every
    ``hop`` (10 ms), runs the streaming 'yin' tracker on it, and takes the median of the
    last ``median_frames`` voiced frames (50 ms) as the sung pitch ``f0``. While a note is
    held it sets ``transpose = 12 * log2(f_note / f0)`` (clamped to the parameter range)
    whenever that moves by more than ``deadband`` semitones. The engine smooths transpose
    (30 ms), so slow drift and the note's intonation are corrected while vibrato faster
    than ~5 Hz partly passes through — the voice keeps its life and sits on the note.
    Unvoiced input keeps the last transpose. Releasing all notes restores the transpose
    in force before the first note.
    """

    def __init__(self, session: Any, host: Any, f0_range: tuple[float, float] = (50.0, 1100.0), *,
                 median_frames: int = 5, deadband: float = 0.05) -> None:
        self.s, self.host = session, host
        self.hop = max(1, host.sample_rate // 100)
        self._stream = get_f0_tracker("yin").stream(host.sample_rate, self.hop, *f0_range)
        self.median_frames, self.deadband = median_frames, deadband
        self._recent: list[float] = []
        self.target: float | None = None
        self.base: float | None = None
        self.last_sent: float | None = None
        self.f0 = 0.0
        self._pos = 0
        self._running = False
        self._thread: threading.Thread | None = None
        self._buf = np.zeros(host.cap, np.float32)

    def start(self) -> None:
        if self._running:
            return
        self._running = True
        self._pos = self.host.in_w
        self._stream.reset()
        self._thread = threading.Thread(target=self._loop, name="svc-note-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.release()
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=1)

    def hold(self, note: int) -> None:
        if self.target is None:
            self.base = float(self.s.values["transpose"])
        self.target = note_hz(note)
        self.last_sent = None
        self._update()

    def release(self) -> None:
        if self.target is not None and self.base is not None:
            self.target = None
            self.s.set_param("transpose", self.base, "note")
        self.target, self.base = None, None

    def poll(self) -> None:
        """Consume new input from the ring and update transpose (the thread calls this)."""
        h = self.host
        new = h.in_w - self._pos
        if new > h.cap // 2:  # fell behind: keep the freshest half second
            self._pos = h.in_w - h.sample_rate // 2
            new = h.in_w - self._pos
        if new < self.hop:
            return
        new -= new % self.hop
        buf = self._buf[:new]
        ring_read(h.in_ring, self._pos, buf)
        self._pos += new
        for f in self._stream.push(buf.copy()):
            if f > 0:
                self._recent.append(float(f))
                del self._recent[:-self.median_frames]
        self.f0 = float(np.median(self._recent)) if self._recent else 0.0
        self._update()

    def _update(self) -> None:
        if self.target is None or self.f0 <= 0:
            return
        p = PARAMETERS["transpose"]
        tr = min(p.maximum, max(p.minimum, 12.0 * math.log2(self.target / self.f0)))
        if self.last_sent is None or abs(tr - self.last_sent) > self.deadband:
            self.last_sent = tr
            self.s.set_param("transpose", tr, "note")

    def _loop(self) -> None:
        while self._running:
            try:
                self.poll()
            except Exception:
                pass  # a tracker hiccup must not end note-follow; next poll retries
            time.sleep(self.hop / self.host.sample_rate)
