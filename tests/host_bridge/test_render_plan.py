"""The batch is planned whole before anything is written: no render loses or overwrites audio."""
from __future__ import annotations

import hashlib
import os

import pytest
import soundfile as sf

from host_bridge.cli import main
from svc_dsp.errors import RenderError
from tests.signals import sung_tone


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _wav(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sung_tone(22050, 0.3, seed=seed), 22050, subtype="PCM_16")
    return path


def _tree(root):
    return {str(p.relative_to(root)): _sha(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_inputs_with_one_output_name_are_refused(tmp_path, random_model_dir, capsys):
    a, b = _wav(tmp_path / "d1" / "a.wav", 1), _wav(tmp_path / "d2" / "a.wav", 2)
    out = tmp_path / "out"
    for extra in ([], ["--overwrite"]):
        rc = main(["render", str(a), str(b), "-o", str(out), "--model", str(random_model_dir), "-q", *extra])
        err = capsys.readouterr().err
        assert rc == 2
        assert str(a) in err and str(b) in err and len(err.strip().splitlines()) == 1
        assert not out.exists()  # nothing rendered, not even the first


def test_input_inside_the_output_folder_is_never_overwritten(tmp_path, random_model_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _wav(tmp_path / "take" / "a.wav", 1)
    _wav(tmp_path / "mix" / "take" / "a.wav", 2)
    before = _tree(tmp_path)
    rc = main(["render", "take", "mix/take", "-o", "mix", "--overwrite", "--model", str(random_model_dir), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "take/a.wav" in err and "mix/take/a.wav" in err
    assert _tree(tmp_path) == before


def test_output_that_is_another_input_via_symlink_is_refused(tmp_path, random_model_dir, capsys):
    src = _wav(tmp_path / "in" / "a.wav", 1)
    out = tmp_path / "out"
    out.mkdir()
    other = _wav(tmp_path / "keep" / "b.wav", 2)
    os.symlink(other, out / "b.wav")  # out/b.wav is the input keep/b.wav under another name
    before = _sha(other)
    rc = main(["render", str(src), str(other), "-o", str(out), "--overwrite",
               "--model", str(random_model_dir), "-q"])
    assert rc == 2 and str(other) in capsys.readouterr().err
    assert _sha(other) == before


def test_json_report_never_takes_an_input(tmp_path, random_model_dir, capsys):
    a, b = _wav(tmp_path / "a.wav", 1), _wav(tmp_path / "b.wav", 2)
    before = _sha(a)
    # the shell expanded *.wav right after --json: the first WAV became the report's name
    rc = main(["render", "--json", str(a), str(b), "-o", str(tmp_path / "out"), "--model", str(random_model_dir),
               "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and str(a) in err and "--json" in err
    assert _sha(a) == before and not (tmp_path / "out").exists()
    rc = main(["render", "--json", str(tmp_path / "new.wav"), str(b), "-o", str(tmp_path / "out"),
               "--model", str(random_model_dir), "-q"])
    assert rc == 2 and "named like audio" in capsys.readouterr().err
    assert not (tmp_path / "new.wav").exists()


def test_plan_batch_api(tmp_path):
    from host_bridge.render_plan import plan_batch

    a = _wav(tmp_path / "s" / "a.wav")
    _wav(tmp_path / "s" / "sub" / "b.flac")
    (tmp_path / "s" / ".hidden.wav").write_bytes(b"x")
    out = tmp_path / "s" / "converted"  # the output folder inside the input folder is not walked
    _wav(out / "s" / "a.wav")
    plan = plan_batch([tmp_path / "s", a, str(a)], out, report_files=[tmp_path / "r.json"])
    assert plan.ok and plan.refusals == []
    assert [(s.relative_to(tmp_path).as_posix(), d.relative_to(out).as_posix()) for s, d in plan.pairs] == [
        ("s/a.wav", "s/a.wav"), ("s/sub/b.flac", "s/sub/b.flac")]
    bad = plan_batch([a, tmp_path / "s" / "sub"], tmp_path / "s", report_files=[a])
    assert len(bad.refusals) == 3  # a.wav and sub/b.flac are their own outputs; the report is an input
    with pytest.raises(RenderError, match="2 more clashes"):
        bad.check()


def test_hard_linked_output_is_an_input(tmp_path):
    from host_bridge.render_plan import plan_batch

    a = _wav(tmp_path / "in" / "a.wav")
    (tmp_path / "out").mkdir()
    os.link(a, tmp_path / "out" / "a.wav")
    plan = plan_batch([a], tmp_path / "out")
    assert not plan.ok and "is the input file" in plan.refusals[0]

