"""The render command line: --dry-run, the summary table, --model's meaning, help texts, progress."""
from __future__ import annotations

import io
import shutil

import soundfile as sf

from host_bridge.cli import build_parser, main
from host_bridge.render import RenderResult
from tests.signals import sung_tone


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_dry_run_checks_everything_and_writes_nothing(tmp_path, random_model_dir, capsys):
    src = tmp_path / "in"
    src.mkdir()
    sf.write(src / "a.wav", sung_tone(16000, 0.5), 16000, subtype="PCM_24")
    sf.write(src / "b.flac", sung_tone(16000, 0.5), 16000, subtype="PCM_16")
    (src / "c.wav").write_bytes(b"RIFF junk")
    out = tmp_path / "out"
    before = _files(tmp_path)
    rc = main(["render", str(src), "-o", str(out), "--model", str(random_model_dir), "--dry-run"])
    text = capsys.readouterr().out
    assert rc == 1 and _files(tmp_path) == before  # nothing created: not even the output folder
    assert text.count(str(src / "a.wav")) == 1  # each path once
    assert f"write    {src / 'a.wav'} -> {out / 'in' / 'a.wav'}" in text
    assert "fail" in text and "not readable as audio" in text
    assert "re-export it as WAV/FLAC" in text  # the hint at the end of the note is kept
    assert "would write 2, replace 0, skip 0; 1 would fail" in text
    # a sample format the output container cannot hold is found before anything runs
    rc = main(["render", str(src / "b.flac"), "-o", str(out), "--model", str(random_model_dir), "--dry-run",
               "--subtype", "FLOAT"])
    text = capsys.readouterr().out
    assert rc == 1 and "FLOAT cannot be written as FLAC" in text and _files(tmp_path) == before
    rc = main(["render", str(src / "b.flac"), "-o", str(out), "--model", str(random_model_dir), "--dry-run",
               "-s", "nobody"])
    assert rc == 2 and "speaker 'nobody'" in capsys.readouterr().err and _files(tmp_path) == before


def test_summary_table_keeps_the_whole_note_and_each_path_once():
    from host_bridge.render import summary_table

    long = "x" * 30 + "/take.wav"
    msg = (f"{long}: file '{long}': sample rate 4000 Hz; allowed: 8000..192000 Hz — resample it (e.g. to 44100 "
           f"or 48000 Hz) in your DAW or with sox")
    table = summary_table([RenderResult(long, "o.wav", "failed", message=msg)], width=100)
    assert table.count(long) == 1
    flat = " ".join(line.strip() for line in table.splitlines())
    assert "in your DAW or with sox" in flat and "resample it (e.g. to 44100 or 48000 Hz)" in flat


def test_pth_model_gets_the_import_command(tmp_path, capsys):
    src = tmp_path / "a.wav"
    sf.write(src, sung_tone(16000, 0.3), 16000)
    (tmp_path / "voice.pth").write_bytes(b"PK")
    rc = main(["render", str(src), "-o", str(tmp_path / "o"), "--model", str(tmp_path / "voice.pth")])
    err = capsys.readouterr().err
    assert rc == 2 and "so-vits-svc checkpoint" in err and "svc-host import sovits" in err
    assert "does not exist" not in err and len(err.strip().splitlines()) == 1
    rc = main(["render", "a.wav", "-o", "o", "--model", "voice.pth"])  # as typed in the issue: a bare file name
    err = capsys.readouterr().err
    assert rc == 2 and "svc-host import sovits voice.pth" in err and "catalog" not in err


def test_bare_model_name_means_the_catalog_not_the_current_folder(tmp_path, random_model_dir, monkeypatch,
                                                                 capsys):
    cat = tmp_path / "catalog"
    shutil.copytree(random_model_dir, cat / "models" / "demo")
    monkeypatch.setenv("SVC_HOST_PATH", str(cat))
    work = tmp_path / "work"
    (work / "demo").mkdir(parents=True)  # an unrelated folder called demo in the current directory
    (work / "demo" / "model.json").write_text('{"family": "not a model"}')
    sf.write(work / "a.wav", sung_tone(16000, 0.3), 16000)
    monkeypatch.chdir(work)
    assert main(["render", "a.wav", "-o", "out", "--model", "demo", "-q"]) == 0
    capsys.readouterr()
    rc = main(["render", "a.wav", "-o", "out2", "--model", "./demo", "-q"])  # a path is a path
    assert rc == 2 and "demo/model.json" in capsys.readouterr().err


def test_help_shows_defaults_as_typed():
    sub = build_parser()._subparsers._group_actions[0].choices["render"]
    text = sub.format_help()
    assert "(default: default)" not in text
    flat = " ".join(text.split())
    assert "--loudness-match X 0 = the model's own loudness envelope, 1 = follow the input's envelope. [0..1] " \
           "(default: 1)" in flat
    assert "100 %" not in text


def test_render_file_reports_progress(tmp_path, random_model):
    from host_bridge.effect import VoiceConversion
    from host_bridge.render import render_file

    src = tmp_path / "a.wav"
    sf.write(src, sung_tone(16000, 1.0), 16000)
    seen: list[tuple[int, int]] = []
    r = render_file(src, tmp_path / "o.wav", VoiceConversion(random_model), chunk_frames=2000,
                    progress=lambda d, t: seen.append((d, t)))
    assert r.status == "ok", r.message
    done = [d for d, _ in seen]
    assert len(seen) >= 8 and done == sorted(done) and seen[-1][0] == seen[-1][1] >= 16000


def test_progress_bars_only_on_a_terminal():
    from host_bridge.progress import BatchProgress, progress_enabled

    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert not progress_enabled(False, io.StringIO()) and not progress_enabled(True, Tty())
    assert progress_enabled(False, Tty())
    term = Tty()
    bars = BatchProgress(2, enabled=True, stream=term)
    bars.start_file("a.wav")
    bars.file_progress(500, 1000)
    bars.file_done(1, 2, RenderResult("a.wav", "o", "ok"))
    bars.close()
    shown = term.getvalue()
    assert "50%" in shown and "1/2 files" in shown
    quiet = io.StringIO()
    off = BatchProgress(2, enabled=False, stream=quiet)
    off.start_file("a.wav")
    off.file_progress(1, 2)
    off.close()
    assert quiet.getvalue() == ""
