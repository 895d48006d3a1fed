"""`svc-host render`: folders of stems, formats kept, bad files isolated, atomic, deterministic."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from host_bridge.cli import main
from tests.signals import sung_tone


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture()
def stems(tmp_path):
    d = tmp_path / "session"
    (d / "vox").mkdir(parents=True)
    sf.write(d / "vox" / "lead.wav", sung_tone(44100, 0.6), 44100, subtype="PCM_24")
    st = np.stack([sung_tone(48000, 0.5), sung_tone(48000, 0.5, seed=2)]).T
    sf.write(d / "vox" / "dbl stereo.flac", st, 48000, subtype="PCM_16")
    sf.write(d / "harmonie_été.wav", sung_tone(22050, 0.4), 22050, subtype="FLOAT")
    good = d / "vox" / "lead.wav"
    (d / "broken.wav").write_bytes(good.read_bytes()[:60])  # truncated
    (d / "notes.wav").write_text("this is not audio")
    sf.write(d / "empty.wav", np.zeros((0,), np.float32), 44100)
    return d


def test_folder_render_keeps_tree_formats_and_reports_failures(stems, tmp_path, random_model_dir, capsys):
    out = tmp_path / "out"
    rc = main(["render", str(stems), "-o", str(out), "--model", str(random_model_dir), "-q"])
    text = capsys.readouterr().out
    assert rc == 1  # some files failed
    lead = out / "session" / "vox" / "lead.wav"
    dbl = out / "session" / "vox" / "dbl stereo.flac"
    uni = out / "session" / "harmonie_été.wav"
    for p, sr, ch, sub in [(lead, 44100, 1, "PCM_24"), (dbl, 48000, 2, "PCM_16"), (uni, 22050, 1, "FLOAT")]:
        info = sf.info(p)
        src = sf.info(stems / p.relative_to(out / "session"))
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (sr, ch, sub, src.frames)
    assert "3 rendered, 0 skipped, 3 failed" in text
    assert "broken.wav" in text and "notes.wav" in text and "empty.wav" in text
    assert not (out / "session" / "broken.wav").exists()
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".partial")]
    assert leftovers == []


def test_two_renders_are_byte_identical_and_skip_policy(stems, tmp_path, random_model_dir, capsys):
    src = stems / "vox" / "lead.wav"
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--model", str(random_model_dir), "-q", "-t", "3", "-lea", "0.25"]
    assert main(["render", str(src), "-o", str(a), *args]) == 0
    assert main(["render", str(src), "-o", str(b), *args]) == 0
    assert _sha(a / "lead.wav") == _sha(b / "lead.wav")
    capsys.readouterr()
    before = (a / "lead.wav").stat().st_mtime_ns
    assert main(["render", str(src), "-o", str(a), *args]) == 0
    assert "0 rendered, 1 skipped" in capsys.readouterr().out
    assert (a / "lead.wav").stat().st_mtime_ns == before
    assert main(["render", str(src), "-o", str(a), "--overwrite", *args]) == 0


def test_bad_parameters_and_speaker_fail_with_names(stems, tmp_path, random_model_dir, capsys):
    src = stems / "vox" / "lead.wav"
    rc = main(["render", str(src), "-o", str(tmp_path / "o"), "--model", str(random_model_dir), "--transpose", "80"])
    assert rc == 2 and "out of range" in capsys.readouterr().err
    rc = main(["render", str(src), "-o", str(tmp_path / "o"), "--model", str(random_model_dir), "-s", "nobody"])
    assert rc == 2 and "speaker 'nobody'" in capsys.readouterr().err


def test_jobs_two_processes(stems, tmp_path, random_model_dir, capsys):
    out = tmp_path / "out"
    files = [str(stems / "vox" / "lead.wav"), str(stems / "harmonie_été.wav")]
    assert main(["render", *files, "-o", str(out), "--model", str(random_model_dir), "--jobs", "2", "-q"]) == 0
    one = tmp_path / "one"
    assert main(["render", *files, "-o", str(one), "--model", str(random_model_dir), "-q"]) == 0
    assert _sha(out / "lead.wav") == _sha(one / "lead.wav")


def test_worker_processes_use_the_requested_threads(random_model_dir, monkeypatch):
    """--threads reaches each --jobs worker (it was once fixed at one thread there)."""
    import torch

    import host_bridge.render_batch as render

    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    monkeypatch.setattr("host_bridge.render_stop.install_worker_handler", lambda: None)  # not in pytest itself
    render._worker_init(str(random_model_dir), {}, 3)
    assert seen == [3] and render._WORKER_CONVERTER is not None
    monkeypatch.setattr(render, "_WORKER_CONVERTER", None)


def test_help_is_instant_no_torch():
    code = ("import sys; from host_bridge.cli import build_parser; build_parser().format_help(); "
            "print('torch' in sys.modules, 'onnxruntime' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False False"
