"""Render jobs over OSC: submit, progress, done with sha256, cancel, errors, root confinement."""
from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest
import soundfile as sf

from tests.signals import sung_tone


@pytest.fixture(scope="module")
def stems(server):
    root = server.inroot
    (root / "stems").mkdir()
    sf.write(root / "stems" / "lead.wav", sung_tone(24000, 0.6), 24000)
    sf.write(root / "one.wav", sung_tone(24000, 0.5, f0=180), 24000)
    outside = root.parent / f"{root.name}-secret"
    outside.mkdir()
    sf.write(outside / "secret.wav", np.zeros(100, np.float32), 24000)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "escape.wav").symlink_to(outside / "secret.wav")
    return root


def test_job_renders_and_reports_sha256(server, client, stems):
    client.send("/svc/job/submit", "one.wav", "conv/one.wav", "overwrite")
    acc = client.wait("/svc/job/accepted")
    jid = acc.args[0]
    assert acc.args[1:] == ["one.wav", "conv/one.wav"]
    prog = client.wait("/svc/job/progress", timeout=60)
    assert prog.args[0] == jid and 0.0 <= prog.args[1] <= 1.0
    f = client.wait("/svc/job/file", timeout=120)
    done = client.wait("/svc/job/done", timeout=120)
    assert done.args[:2] == [jid, "done"] and done.args[2] == "conv/one.wav"
    out = server.outroot / "conv" / "one.wav"
    assert done.args[3] == hashlib.sha256(out.read_bytes()).hexdigest() == f.args[3]
    assert sf.info(out).frames == 12000
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp files left


@pytest.mark.parametrize("inp,outp,why", [
    ("../x.wav", "a.wav", "contains '..'"),
    ("/etc/passwd", "a.wav", "absolute"),
    ("escape/secret.wav", "a.wav", "outside the input root"),
    ("escape.wav", "a.wav", "outside the input root"),
    ("one.wav", "../a.wav", "contains '..'"),
    ("missing.wav", "a.wav", "does not exist"),
    ("one.wav", "a.wav\\..\\b", "not allowed"),
])
def test_paths_outside_the_roots_are_refused(client, stems, inp, outp, why):
    client.send("/svc/job/submit", inp, outp)
    e = client.wait("/svc/error")
    assert e.args[0] == "/svc/job/submit" and why in e.args[1], e.args


def test_output_symlink_escaping_is_refused(server, client, stems):
    target = server.outroot.parent / f"{server.outroot.name}-elsewhere"
    target.mkdir(exist_ok=True)
    link = server.outroot / "link"
    if not link.exists():
        link.symlink_to(target, target_is_directory=True)
    client.send("/svc/job/submit", "one.wav", "link/one.wav")
    assert "outside the output root" in client.wait("/svc/error").args[1]
    client.send("/svc/job/submit", "one.wav", "x.wav", "clobber")
    assert "skip, overwrite, error" in client.wait("/svc/error").args[1]


def test_cancel_and_folder_jobs(server, client, stems):
    client.send("/svc/job/submit", "stems", "folder-out", "overwrite")
    first = client.wait("/svc/job/accepted").args[0]
    client.send("/svc/job/submit", "one.wav", "cancel-me.wav")
    second = client.wait("/svc/job/accepted").args[0]
    client.send("/svc/job/cancel", second)  # still queued behind the first
    assert client.wait("/svc/job/cancelled", timeout=10).args == [second]
    done = client.wait("/svc/job/done", timeout=120, where=lambda m: m.args[0] == first)
    assert done.args[1] == "done" and done.args[4:] == [1, 0]
    assert (server.outroot / "folder-out" / "lead.wav").is_file()
    assert not (server.outroot / "cancel-me.wav").exists()
    client.send("/svc/job/cancel", 999)
    assert "no running or queued job 999" in client.wait("/svc/error").args[1]
    client.send("/svc/job/submit", "one.wav", "running-cancel.wav")
    jid = client.wait("/svc/job/accepted").args[0]
    client.send("/svc/job/cancel", jid)  # while its process starts: terminated, nothing written
    assert client.wait("/svc/job/cancelled", timeout=30).args == [jid]
    assert not (server.outroot / "running-cancel.wav").exists()
    assert not [p for p in os.listdir(server.outroot) if p.endswith(".partial")]
