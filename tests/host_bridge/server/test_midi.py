"""MIDI: learn, 14-bit CC, program change + bank select, note-follow (mido.Message objects
fed to the handler: real ALSA/JACK MIDI ports cannot be opened in this container)."""
from __future__ import annotations

import math

import mido
import numpy as np
import pytest

from svc_dsp.engine.parameters import PARAMETERS


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def test_learn_7_bit_cc_and_echo_to_osc(server, client):
    midi = server.session.midi
    client.send("/svc/subscribe", "params", "midi")
    client.drain(0.3)
    assert client.request("/svc/midi/learn", "output_gain_db", reply="/svc/midi/learning").args == ["output_gain_db"]
    midi.handle(cc(7, 127, channel=2))
    assert client.wait("/svc/midi/learned").args == ["output_gain_db", 3, 7]
    assert server.session.values["output_gain_db"] == 24.0
    midi.handle(cc(7, 0, channel=2))
    assert client.wait("/svc/param/output_gain_db", where=lambda m: m.args == [-60.0]).args == [-60.0]
    midi.handle(cc(7, 100, channel=1))  # another channel: not bound
    assert server.session.values["output_gain_db"] == -60.0
    client.send("/svc/midi/map")
    assert client.wait("/svc/midi/mapping").args == ["output_gain_db", 3, 7, 7]
    client.wait("/svc/midi/map/end")
    client.send("/svc/midi/forget", "output_gain_db")
    client.wait("/svc/midi/forgot")
    midi.handle(cc(7, 127, channel=2))
    assert server.session.values["output_gain_db"] == -60.0
    server.session.set_param("output_gain_db", 0.0)
    client.send("/svc/midi/learn", "speaker")
    assert "cannot MIDI-learn 'speaker'" in client.wait("/svc/error").args[1]
    client.send("/svc/unsubscribe", "all")


def test_14_bit_cc(server, client):
    midi = server.session.midi
    p = PARAMETERS["transpose"]
    client.request("/svc/midi/learn", "transpose", reply="/svc/midi/learning")
    midi.handle(cc(1, 64))   # MSB: learned, applied as 7-bit until an LSB shows up
    midi.handle(cc(33, 0))   # LSB of CC 1: the binding becomes 14-bit
    assert server.session.values["transpose"] == pytest.approx(p.denormalise(64 * 128 / 16383))
    seen = []
    server.session.listeners.append(lambda n, v, src: seen.append(v) if n == "transpose" else None)
    try:
        midi.handle(cc(1, 100))  # held until its LSB: no coarse step in between
        assert seen == []
        midi.handle(cc(33, 127))
        assert seen == [pytest.approx(p.denormalise((100 * 128 + 127) / 16383))]
        assert midi.mapping_rows() == [["transpose", 1, 1, 14]]
    finally:
        server.session.listeners.pop()
        midi.forget("transpose")
        server.session.set_param("transpose", 0.0)


def test_program_change_and_bank_select_load_presets(server, client):
    midi = server.session.midi
    client.send("/svc/subscribe", "presets", "midi")
    client.drain(0.3)
    midi.handle(mido.Message("program_change", program=1))  # presets sorted: a-plain, b-up, ...
    assert client.wait("/svc/preset/current", timeout=20).args == ["b-up"]
    assert server.session.values["transpose"] == 12.0
    midi.handle(cc(0, 1))
    midi.handle(cc(32, 0))
    midi.handle(mido.Message("program_change", program=0))  # bank 1 -> preset 16384: none
    e = client.wait("/svc/error", timeout=20)
    assert e.args[0] == "/svc/midi/program" and "preset number 16384 does not exist" in e.args[1]
    midi.handle(cc(0, 0))
    midi.handle(mido.Message("program_change", program=0))
    assert client.wait("/svc/preset/current", timeout=20).args == ["a-plain"]
    client.send("/svc/unsubscribe", "all")


class _FakeSession:
    def __init__(self) -> None:
        self.values = {"transpose": 1.0}
        self.sets: list[float] = []

    def set_param(self, name, value, source="osc"):
        self.values[name] = value
        self.sets.append(value)


class _FakeHost:
    sample_rate = 48000
    cap = 1 << 16

    def __init__(self) -> None:
        self.in_ring = np.zeros(self.cap, np.float32)
        self.in_w = 0

    def write(self, x: np.ndarray) -> None:
        for v in np.array_split(x, max(1, x.shape[0] // 256)):
            i = self.in_w % self.cap
            n = v.shape[0]
            first = min(n, self.cap - i)
            self.in_ring[i:i + first] = v[:first]
            self.in_ring[: n - first] = v[first:]
            self.in_w += n


def test_note_follow_lands_the_tracked_f0_on_the_note():
    from host_bridge.server.midi import NoteFollower, note_hz

    s, h = _FakeSession(), _FakeHost()
    f = NoteFollower(s, h, (60.0, 1000.0))
    sr = h.sample_rate
    t = np.arange(sr // 2) / sr
    tone = (0.3 * np.sin(2 * np.pi * 196.0 * t) + 0.1 * np.sin(2 * np.pi * 392.0 * t)).astype(np.float32)
    f.hold(69)   # A4 = 440 Hz while the singer holds G3 (196 Hz)
    h.write(tone)
    f.poll()
    want = 12 * math.log2(440.0 / 196.0)
    assert abs(s.values["transpose"] - want) < 0.1, (s.values["transpose"], want, f.f0)
    f.hold(72)   # last note wins
    assert abs(s.values["transpose"] - 12 * math.log2(note_hz(72) / 196.0)) < 0.1
    f.release()  # all notes up: back to the transpose set before the first note
    assert s.values["transpose"] == 1.0


def test_note_follow_through_midi_notes(server, client):
    midi, follower = server.session.midi, server.session.follower
    client.send("/svc/midi/note_follow", 1)
    client.send("/svc/midi/note_follow")
    assert client.wait("/svc/midi/note_follow").args == [1]
    follower.f0 = 220.0  # as if the tracker heard A3
    midi.handle(mido.Message("note_on", note=69, velocity=100))
    assert server.session.values["transpose"] == pytest.approx(12.0, abs=1e-6)
    midi.handle(mido.Message("note_on", note=64, velocity=100))
    midi.handle(mido.Message("note_on", note=64, velocity=0))  # note-off as velocity 0
    assert server.session.values["transpose"] == pytest.approx(12.0, abs=1e-6)
    midi.handle(mido.Message("note_off", note=69))
    assert server.session.values["transpose"] == 0.0
    client.send("/svc/midi/note_follow", 0)
    client.send("/svc/midi/note_follow")
    assert client.wait("/svc/midi/note_follow").args == [0]
