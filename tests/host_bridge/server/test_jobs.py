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


def test_submit_is_answered_while_its_folder_is_planned(server, client, stems, monkeypatch):
    """Planning (walking the folder) happens off the OSC thread: the submit is accepted and pings are
    answered while it runs; the job renders once it is planned."""
    import threading

    jobs = server.session.jobs
    entered, gate = threading.Event(), threading.Event()
    real = jobs.plan

    def slow_plan(inp, outp):
        entered.set()
        gate.wait(45)
        return real(inp, outp)

    monkeypatch.setattr(jobs, "plan", slow_plan)
    try:
        client.send("/svc/job/submit", "stems", "planned-out", "overwrite")
        client.send("/svc/ping", 41)
        jid = client.wait("/svc/job/accepted").args[0]
        assert client.wait("/svc/pong").args == [41]
        assert entered.wait(30) and not gate.is_set()
    finally:
        gate.set()
    done = client.wait("/svc/job/done", timeout=120, where=lambda m: m.args[0] == jid)
    assert done.args[1] == "done" and (server.outroot / "planned-out" / "lead.wav").is_file()


def test_huge_folder_is_capped_and_pings_stay_in_order(server, client):
    """20 000 (empty) .wav files: each submit is answered at once with a job id, the folder is refused
    by the per-job file cap on the planner, and pings sent in between are answered in order."""
    from host_bridge.server.jobs import MAX_FILES_PER_JOB, MAX_QUEUED

    big = server.inroot / "huge"
    big.mkdir()
    for i in range(20000):
        (big / f"take{i:05d}.wav").touch()
    n = MAX_QUEUED + 4
    for k in range(n):
        client.send("/svc/job/submit", "huge", f"huge-out-{k}", "overwrite")
        client.send("/svc/ping", k)
    answers = ("/svc/pong", "/svc/job/accepted", "/svc/error")
    got: list = []
    for _ in range(20 * n):  # bounded: each pump waits for one datagram (30 s guards a hang only)
        got = [x for x in client.inbox if x.address in answers]
        if len(got) >= 2 * n or not client._pump(30.0):
            break
    got = [x for x in client.inbox if x.address in answers]
    client.inbox = [x for x in client.inbox if x.address not in answers]
    pongs = [x.args[0] for x in got if x.address == "/svc/pong"]
    assert pongs == list(range(n))
    # each submit's answer comes before the ping sent after it
    seq = [x.address for x in got]
    for k in range(n):
        assert seq[2 * k] in ("/svc/job/accepted", "/svc/error") and seq[2 * k + 1] == "/svc/pong", seq
    accepted = [x.args[0] for x in got if x.address == "/svc/job/accepted"]
    refused = [x for x in got if x.address == "/svc/error"]
    assert accepted and all("queued" in r.args[1] for r in refused)
    for jid in accepted:
        err = client.wait("/svc/job/error", timeout=120, where=lambda m, j=jid: m.args[0] == j)
        assert f"more than {MAX_FILES_PER_JOB} audio files" in err.args[1], err.args
    assert not any((server.outroot / f"huge-out-{k}").exists() for k in range(n))


def test_job_reports_progress_while_a_file_renders(server, client, stems):
    """A file longer than one render block: /svc/job/progress arrives with a fraction between 0 and 1
    while the file renders (from the renderer's progress callback), then the file and done events."""
    sf.write(server.inroot / "long.wav", sung_tone(24000, 6.0), 24000)
    client.send("/svc/job/submit", "long.wav", "long-out.wav", "overwrite")
    jid = client.wait("/svc/job/accepted").args[0]
    mid = client.wait("/svc/job/progress", timeout=120, where=lambda m: m.args[0] == jid and 0.0 < m.args[1] < 1.0)
    assert mid.args[2:4] == [0, 1] and mid.args[4] == "long.wav"
    done = client.wait("/svc/job/done", timeout=120, where=lambda m: m.args[0] == jid)
    assert done.args[1] == "done"
