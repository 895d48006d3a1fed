"""Temp files of a render: removed on SIGTERM as on Ctrl-C, stale ones removed on the next run,
names that fit NAME_MAX, and file names that are not UTF-8."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from host_bridge.cli import main
from tests.signals import sung_tone

REPO = Path(__file__).resolve().parents[2]


def _partials(folder):
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".partial")]


@pytest.mark.parametrize("jobs", [1, 2])
def test_sigterm_during_render_leaves_no_partial(tmp_path, random_model_dir, jobs):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("long.wav", "long2.wav")[:jobs]:  # 40 s each: still rendering when hit
        sf.write(src / name, np.tile(sung_tone(16000, 2.0), 20), 16000, subtype="PCM_16")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "host_bridge.cli", "render", str(src), "-o", str(out),
                             "--model", str(random_model_dir), "-q", "--jobs", str(jobs)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        seen: list[Path] = []
        while proc.poll() is None and time.monotonic() < deadline and not seen:
            seen = _partials(out) if out.exists() else []
            time.sleep(0.05)
        assert seen, f"no temp file appeared before the render ended: {proc.poll()} " \
                     f"{proc.communicate()[1][-3000:] if proc.poll() is not None else ''}"
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "terminated" in err and "Traceback" not in err
    assert _partials(out) == [] and not list(out.rglob("*.wav"))
    assert "Traceback" not in err


def test_stale_partials_of_our_naming_are_removed_on_the_next_run(tmp_path, random_model_dir, capsys):
    src = tmp_path / "a.wav"
    sf.write(src, sung_tone(16000, 0.3), 16000)
    from svc_dsp.fileops import HOST_TAG, PARTIAL_RE

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    stale = out / f".a.wav.{dead_pid}-{HOST_TAG}.0badc0de.partial"
    live = out / f".b.wav.{os.getpid()}-{HOST_TAG}.0badc0de.partial"  # a render still running (this process)
    old = out / ".c.wav.1234abcd.partial"  # the form older versions wrote, two days old
    elsewhere = out / f".d.wav.{dead_pid}-000000.0badc0de.partial"  # another machine's, on shared storage
    mine = [out / ".a.wav.partial", out / "notes.partial", out / f"a.wav.{dead_pid}-{HOST_TAG}.0badc0de.partial",
            elsewhere]
    for p in [stale, live, old, *mine]:
        p.write_bytes(b"x" * 100)
    os.utime(old, (time.time() - 2 * 86400, time.time() - 2 * 86400))
    assert PARTIAL_RE.match(stale.name) and not any(PARTIAL_RE.match(p.name) for p in mine[:3])
    assert main(["render", str(src), "-o", str(out), "--model", str(random_model_dir), "-q"]) == 0
    assert "left by an interrupted render" not in capsys.readouterr().err  # -q
    assert not stale.exists() and not old.exists()
    assert live.exists() and all(p.exists() for p in mine)
    assert (out / "a.wav").exists()


def test_temp_names_fit_name_max_for_long_names(tmp_path, random_model_dir, capsys):
    name = "ä" * 60 + "x" * (244 - 2 * 60 - 4) + ".wav"  # 244 bytes in UTF-8
    assert len(name.encode()) == 244
    src = tmp_path / "in" / name
    src.parent.mkdir()
    sf.write(src, sung_tone(16000, 0.3), 16000)
    out = tmp_path / "out"
    rc = main(["render", str(src), "-o", str(out), "--model", str(random_model_dir), "-q",
               "--json", str(tmp_path / "r.json")])
    assert rc == 0, capsys.readouterr()
    assert (out / name).exists() and _partials(out) == []
    from svc_dsp.fileops import PARTIAL_RE, temp_name

    t = temp_name(tmp_path / name)
    assert len(t.encode()) <= 255 and PARTIAL_RE.match(t)


def test_non_utf8_file_name_renders(tmp_path, random_model_dir, capfd):
    folder = os.fsencode(tmp_path / "in")
    os.mkdir(folder)
    raw = os.path.join(folder, b"caf\xe9 take.wav")
    sf.write(raw, sung_tone(16000, 0.3), 16000)
    out = tmp_path / "out"
    rc = main(["render", os.fsdecode(folder), "-o", str(out), "--model", str(random_model_dir), "-q",
               "--json", str(tmp_path / "r.json")])
    text = capfd.readouterr()
    assert rc == 0, text
    assert os.path.exists(os.path.join(os.fsencode(out), b"in", b"caf\xe9 take.wav"))
    assert "UnicodeEncodeError" not in text.out + text.err
    assert [p for p in os.listdir(os.path.join(os.fsencode(out), b"in")) if p.endswith(b".partial")] == []



def test_temps_of_finds_a_targets_temp_files_also_shortened(tmp_path):
    from svc_dsp.fileops import temp_name, temps_of

    long = tmp_path / ("y" * 250)
    short = tmp_path / "a.wav"
    made = [tmp_path / temp_name(p) for p in (long, short, tmp_path / "b.wav")]
    for p in made:
        p.write_bytes(b"")
    assert temps_of(long) == [made[0]] and temps_of(short) == [made[1]]
