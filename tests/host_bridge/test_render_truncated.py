"""A file shorter than its header (an interrupted copy) is never rendered as "ok" with silence."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from host_bridge.cli import main
from tests.signals import sung_tone

SR = 22050


def _cut(path, fmt, subtype, seconds=1.0, keep=0.5):
    x = sung_tone(SR, seconds)
    sf.write(path, x, SR, format=fmt, subtype=subtype)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return len(x)


CASES = [("cut.flac", "FLAC", "PCM_16"), ("cut.rf64", "RF64", "PCM_24"), ("cut.w64", "W64", "PCM_16"),
         ("cut.wav", "WAV", "FLOAT"), ("cut.aiff", "AIFF", "PCM_16")]


@pytest.mark.parametrize("name,fmt,subtype", CASES)
def test_truncated_file_fails_naming_the_missing_duration(tmp_path, random_model_dir, capsys, name, fmt, subtype):
    src = tmp_path / name
    _cut(src, fmt, subtype)
    out = tmp_path / "out"
    rc = main(["render", str(src), "-o", str(out), "--model", str(random_model_dir), "-q"])
    text = capsys.readouterr().out
    assert rc == 1
    assert "0 rendered, 0 skipped, 1 failed" in text and "truncated" in text and "s missing" in text
    assert not (out / name).exists()


@pytest.mark.parametrize("name,fmt,subtype", [CASES[0], CASES[1]])
def test_allow_truncated_renders_what_is_there_with_a_warning(tmp_path, random_model_dir, capsys, name, fmt,
                                                              subtype):
    src = tmp_path / name
    declared = _cut(src, fmt, subtype)
    out = tmp_path / "out"
    rc = main(["render", str(src), "-o", str(out), "--model", str(random_model_dir), "-q", "--allow-truncated",
               "--json", str(tmp_path / "r.json")])
    text = capsys.readouterr().out
    assert rc == 0 and "1 rendered" in text
    import json

    rep = json.loads((tmp_path / "r.json").read_text())[0]
    warn = [w for w in rep["warnings"] if w.startswith("truncated file")]
    assert len(warn) == 1
    written = sf.info(out / name).frames
    assert 0 < written < declared
    missing = declared - written
    assert f"{missing / SR:.3f} s ({missing} samples) missing" in warn[0]
    y, _ = sf.read(out / name)
    assert np.abs(y).max() > 0.01  # a real render, not silence


def test_whole_file_trackers_check_too(tmp_path, random_model_dir, capsys):
    src = tmp_path / "cut.flac"
    _cut(src, "FLAC", "PCM_16")
    rc = main(["render", str(src), "-o", str(tmp_path / "o"), "--model", str(random_model_dir), "-q",
               "-f0p", "harvest"])
    assert rc == 1 and "truncated" in capsys.readouterr().out
