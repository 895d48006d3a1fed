"""cluster_ratio over OSC and MIDI reaches the running engine's targets."""
from __future__ import annotations

import time

import mido


def _target(server):
    return server.session.host.converter.get("cluster_ratio")


def test_osc_sets_cluster_ratio(server, client):
    client.send("/svc/param/cluster_ratio", 0.6)
    deadline = time.monotonic() + 5.0
    while abs(_target(server) - 0.6) > 1e-6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert abs(_target(server) - 0.6) < 1e-6      # OSC floats are float32
    client.send("/svc/param/cluster_ratio", 1.5)
    e = client.wait("/svc/error")
    assert "cluster_ratio" in e.args[1] and "0.0, 1.0" in e.args[1]


def test_midi_cc_learns_and_sets_cluster_ratio(server):
    midi = server.session.midi
    midi.arm("cluster_ratio")
    midi.handle(mido.Message("control_change", channel=0, control=21, value=127))
    assert _target(server) == 1.0
    midi.handle(mido.Message("control_change", channel=0, control=21, value=0))
    assert _target(server) == 0.0
