"""The demo-voice recipe in --tiny mode (needs festival; uses the random test encoder)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.sysdeps import needs

pytestmark = pytest.mark.usefixtures("catalog_env")


def test_singing_follows_the_melody() -> None:
    import numpy as np

    from training.recipes.singing import melody

    rng = np.random.default_rng(0)
    voiced = np.ones(2000, dtype=bool)
    voiced[500:600] = False
    f0 = melody(voiced, rng, 57.0, 76.0)
    assert (f0[500:600] == 0).all() and (f0[voiced] > 0).all()
    midi = 69 + 12 * np.log2(f0[voiced] / 440.0)
    assert midi.min() >= 57 - 0.75 and midi.max() <= 76 + 0.75


@needs("festival", "festvox-us-slt-hts")
def test_demo_recipe_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from host_bridge.presets import load_preset
    from svc_dsp.models.catalog import load_model
    from tests.training.train_helpers import ENCODER_NAME
    from training.recipes.demo_voice import main

    out = tmp_path / "presets" / "models" / "demo"
    monkeypatch.chdir(tmp_path)  # a relative --work must work (the train config sits inside it)
    rc = main(["--tiny", "--minutes", "0.25", "--jobs", "1", "--threads", "1", "--work", "work",
               "--out", str(out), "--encoder", ENCODER_NAME])
    assert rc == 0
    model = load_model(out)
    assert model.speakers == ["demo"] and model.sample_rate == 24000 and model.hop_size == 120
    preset = load_preset(tmp_path / "presets" / "demo.toml", allow_path=True)
    assert preset.model == "demo"
    assert preset.parameters == {"transpose": 0.0, "f0_method": "yin", "loudness_match": 1.0, "mix": 1.0}
    assert sum(p.stat().st_size for p in out.iterdir()) < 10e6

    # the work folder keeps its phrase settings: another range is refused, not mixed in
    rc = main(["--tiny", "--minutes", "0.25", "--jobs", "1", "--work", "work", "--out", str(out),
               "--encoder", ENCODER_NAME, "--range", "A2-E5"])
    assert rc == 2


def test_note_names_and_range_checks(tmp_path: Path) -> None:
    from training.recipes.demo_voice import generate
    from training.recipes.singing import note_number

    assert [note_number(n) for n in ("A2", "C4", "C#4", "Db4", "E5", "Bb-1")] == [45, 60, 61, 61, 76, 10]
    for bad in ("H2", "A", "A#x", ""):
        with pytest.raises(ValueError, match="is not a note name"):
            note_number(bad)
    with pytest.raises(ValueError, match="spans 7 semitones"):
        generate(tmp_path, 0.1, 1, 1, "cmu_us_slt_arctic_hts", note_range="A3-E4")
    old = tmp_path / "demo"
    old.mkdir()
    (old / "phrase_0000.wav").write_bytes(b"")  # phrases of the earlier recipe (no settings file): A3-E5
    with pytest.raises(ValueError, match=r"'range_midi': \[57, 76\].*another --work folder"):
        generate(tmp_path, 0.1, 1, 1, "cmu_us_slt_arctic_hts", note_range="A2-E5")


@needs("festival", "festvox-us-slt-hts", "flite")
def test_demo_recipe_tiny_with_an_extra_voice(tmp_path: Path) -> None:
    from svc_dsp.models.catalog import load_model
    from tests.training.train_helpers import ENCODER_NAME
    from training.prepare import read_filelist
    from training.recipes.demo_voice import main

    out, work = tmp_path / "m", tmp_path / "work"
    args = ["--tiny", "--minutes", "0.25", "--jobs", "1", "--threads", "1", "--work", str(work), "--out", str(out),
            "--preset", str(tmp_path / "demo.toml"), "--encoder", ENCODER_NAME]
    assert main([*args, "--extra-voices", "flite:awb", "--extra-minutes", "0.15"]) == 0
    assert load_model(out).speakers == ["demo", "flite-awb"]  # the target stays the first (default) speaker
    assert any("/flite-awb/" in t for t in read_filelist(work / "prepared", "train"))
    # a work folder with a speaker the command no longer names is refused, not trained on
    assert main(args) == 2


def test_extra_voice_names() -> None:
    from training.recipes.demo_voice import extra_seed, extra_speaker

    assert extra_speaker("festival:lp_diphone") == "festival-lp_diphone"
    assert extra_speaker("espeak:en-gb+m1") == "espeak-en-gb+m1"
    assert all(extra_speaker(v) > "demo" for v in ("espeak:a", "festival:a", "flite:a"))
    for bad in ("lp_diphone", "sapi:x", "flite:", "flite:../x"):
        with pytest.raises(ValueError, match="give ENGINE:NAME"):
            extra_speaker(bad)
    assert extra_seed(2026, "flite:awb") == extra_seed(2026, "flite:awb") != extra_seed(2026, "flite:rms")


@needs("festival")
def test_extra_voices_are_checked_before_anything_is_made(tmp_path: Path) -> None:
    from benchmarks.quality import SOURCES
    from training.recipes.demo_voice import EXTRA_VOICES, check_voices, main

    with pytest.raises(ValueError, match="voice 'festival:no_such_voice' does not speak here"):
        check_voices(["festival:no_such_voice"])
    assert main(["--extra-voices", "festival:no_such_voice", "--work", str(tmp_path / "w")]) == 2
    assert not (tmp_path / "w").exists()
    assert len(EXTRA_VOICES) == 12 and not set(SOURCES) & set(EXTRA_VOICES)
