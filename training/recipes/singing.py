"""Make a text-to-speech voice sing: WORLD analysis, a generated melody, resynthesis.

Speech comes from a local synthesiser (festival / flite; see /work/shared/SYNTHETIC_SPEECH.md).
:func:`sing` stretches voiced frames (sung vowels are long), replaces F0 with a melody —
notes on a scale inside a chosen range, glides between notes, vibrato on held notes, slow
drift — and resynthesises with the original spectral envelope and aperiodicity, so the
words stay intact. Everything is seeded: the same inputs give the same audio.
"""
from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

FRAME_MS = 5.0
SCALES = {"major": [0, 2, 4, 5, 7, 9, 11], "minor": [0, 2, 3, 5, 7, 8, 10]}

_WORDS = {
    "subj": ["the old sailor", "a quiet child", "my brother", "the singer", "our neighbour", "a tired doctor",
             "the young painter", "her grandmother", "the farmer", "a clever student", "the baker", "two friends",
             "the night watchman", "a wandering poet", "the violin teacher", "my cousin from the valley"],
    "verb": ["carried", "painted", "found", "remembered", "followed", "praised", "lifted", "gathered", "measured",
             "borrowed", "admired", "polished", "watched", "dreamed of", "sang about", "wrote down"],
    "obj": ["a silver bell", "the broken window", "seven yellow apples", "the morning light", "a heavy wooden chest",
            "the distant mountains", "a letter from home", "the summer rain", "an orange lantern",
            "the frozen river", "a bowl of warm soup", "the golden harvest", "the echo of the bells",
            "a map of the islands", "the smell of fresh bread", "the quiet harbour"],
    "place": ["near the harbour", "under the bridge", "behind the church", "across the meadow", "in the kitchen",
              "on the highest hill", "beside the lake", "through the narrow street", "at the edge of town",
              "inside the music hall", "by the open fire", "along the railway"],
    "time": ["every evening", "before the storm", "at dawn", "all winter long", "when the bells rang",
             "after the long journey", "in the middle of the night", "on a bright Sunday", "just in time",
             "while the kettle boiled"],
}
_FIXED = [
    "The birch canoe slid on the smooth planks.", "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.", "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.", "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.", "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.", "The boy was there when the sun rose.",
    "Oh what a lovely morning, the valley is singing.", "Hold me close and never let me go.",
    "Shine on, shine on, harvest moon, up in the sky.", "Over the hills and far away we ride.",
    "Why do you wait, my love, by the shore?", "Who will remember the songs that we knew?",
    "Thank you for the music and the joy it brings.", "Zero, one, two, three, four, five, six, seven.",
    "Judge the size of the measure by the voice.", "Fish and chips are sold on every corner.",
]


def sentences(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` varied English sentences: fixed phonetically rich lines and random ones from a small grammar."""
    out = []
    for i in range(n):
        if i < len(_FIXED) and rng.random() < 0.5:
            out.append(_FIXED[i])
            continue
        w = {k: v[int(rng.integers(len(v)))] for k, v in _WORDS.items()}
        form = int(rng.integers(4))
        s = [f"{w['subj']} {w['verb']} {w['obj']} {w['place']}",
             f"{w['time']}, {w['subj']} {w['verb']} {w['obj']}",
             f"{w['subj']} {w['verb']} {w['obj']} {w['time']}, {w['place']}",
             f"did {w['subj']} see {w['obj']} {w['place']}?"][form]
        out.append(s[0].upper() + s[1:] + ("" if s.endswith("?") else "."))
    return out


def speak(text: str, voice: str = "cmu_us_slt_arctic_hts") -> tuple[np.ndarray, int]:
    """Speech for ``text``: float64 (N,) mono and its rate in Hz.

    ``voice``: a festival voice name (``cmu_us_slt_arctic_hts``, or ``festival:NAME``),
    ``flite:NAME`` (awb, rms, slt, kal16, ...), ``espeak:NAME`` (``en-us+m3``, ...), or a neural
    voice from a PyPI wheel (training/recipes/neural_voices.py): ``piper:joe`` or
    ``kokoro:STYLE`` / ``kokoro:STYLE*W+STYLE*W`` (a style mixture, e.g. ``kokoro:jm_kumo``).
    """
    import soundfile as sf

    engine, name = voice.split(":", 1) if ":" in voice else ("festival", voice)
    if engine in ("piper", "kokoro"):
        from training.recipes import neural_voices

        x32, sr32 = (neural_voices.speak_piper if engine == "piper" else neural_voices.speak_kokoro)(text, name)
        return x32.astype(np.float64), sr32
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "s.wav"
        if engine == "flite":
            subprocess.run([shutil.which("flite") or "flite", "-voice", name, "-t", text, "-o", str(out)],
                           check=True, capture_output=True)
        elif engine == "espeak":
            subprocess.run([shutil.which("espeak-ng") or "espeak-ng", "-v", name, "-w", str(out), text],
                           check=True, capture_output=True)
        elif engine == "festival":
            cmd = [shutil.which("text2wave") or "text2wave", "-eval", f"(voice_{name})", "-o", str(out)]
            subprocess.run(cmd, input=text.encode(), check=True, capture_output=True)
        else:
            raise ValueError(f"voice '{voice}': unknown engine '{engine}'; allowed: festival:NAME, flite:NAME, "
                             f"espeak:NAME, piper:NAME, kokoro:STYLE or a festival voice name")
        x, sr = sf.read(out, dtype="float64")
    return (x.mean(axis=1) if x.ndim > 1 else x), int(sr)


ENGINES = ("festival", "flite", "espeak", "piper", "kokoro")  # what speak() accepts before ':' in a voice name

_NOTE_STEPS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def note_number(name: str) -> int:
    """MIDI number of a note name in scientific pitch notation: 'A2' -> 45, 'C#4'/'Db4' -> 61."""
    s = name.strip()
    letter, rest = s[:1].upper(), s[1:]
    shift = 0
    while rest[:1] in ("#", "b"):
        shift += 1 if rest[0] == "#" else -1
        rest = rest[1:]
    if letter not in _NOTE_STEPS or not rest.lstrip("-").isdigit():
        raise ValueError(f"note '{name}' is not a note name; use a letter A-G, optional # or b, and an "
                         "octave, e.g. A2, C#4, Eb3 (C4 is middle C)")
    return 12 * (int(rest) + 1) + _NOTE_STEPS[letter] + shift


def melody(voiced: np.ndarray, rng: np.random.Generator, low_midi: float, high_midi: float) -> np.ndarray:
    """F0 in Hz per frame (0 where ``voiced`` is False): notes, glides, vibrato, drift."""
    n = voiced.size
    fps = 1000.0 / FRAME_MS
    span = high_midi - low_midi
    centre = low_midi + 4 + rng.random() * max(0.0, span - 8)  # this phrase's register
    key = int(rng.integers(12))
    scale = SCALES["major" if rng.random() < 0.6 else "minor"]
    pitches = [m for m in range(int(low_midi), int(high_midi) + 1) if (m - key) % 12 in scale
               and abs(m - centre) <= 6]
    midi = np.zeros(n)
    held = np.zeros(n, dtype=bool)
    i, cur = 0, int(rng.integers(len(pitches)))
    while i < n:
        dur = int(fps * (rng.choice([0.15, 0.25, 0.35, 0.5, 0.8, 1.2], p=[.15, .25, .25, .17, .12, .06])))
        cur = int(np.clip(cur + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), 0, len(pitches) - 1))
        midi[i:i + dur] = pitches[cur]
        held[i + int(0.15 * fps):i + dur] = dur > 0.3 * fps
        i += dur
    # glides: smooth note changes over 30-80 ms
    g = max(1, int(fps * (0.03 + 0.05 * rng.random())))
    midi = np.convolve(np.pad(midi, (g, g), mode="edge"), np.ones(2 * g + 1) / (2 * g + 1), mode="same")[g:-g]
    t = np.arange(n) / fps
    rate, depth = 4.8 + 1.7 * rng.random(), 0.15 + 0.4 * rng.random()
    fade = np.convolve(held.astype(float), np.ones(int(0.2 * fps)) / int(0.2 * fps), mode="same")
    midi += depth * fade * np.sin(2 * math.pi * rate * t + rng.random() * 6.28)
    midi += np.cumsum(rng.normal(0, 0.01, n))[:n] * 0.3  # slow drift
    midi = np.clip(midi, low_midi - 0.7, high_midi + 0.7)
    return np.where(voiced, 440.0 * 2.0 ** ((midi - 69.0) / 12.0), 0.0)


def sing(speech: np.ndarray, sr: int, rng: np.random.Generator, *, low_midi: float = 57.0,
         high_midi: float = 76.0, stretch: tuple[float, float] = (1.3, 2.6)) -> tuple[np.ndarray, np.ndarray]:
    """Re-sing ``speech`` (float (N,) at ``sr``) on a generated melody between ``low_midi`` and
    ``high_midi`` (A3 = 57 .. E5 = 76). Returns (audio float32 (M,) at ``sr``, F0 Hz per 5 ms frame)."""
    from svc_dsp.features.f0_world import load_pyworld

    pw = load_pyworld()
    x = np.ascontiguousarray(speech, dtype=np.float64)
    f0, t = pw.dio(x, sr, f0_floor=60.0, f0_ceil=600.0, frame_period=FRAME_MS)
    f0 = pw.stonemask(x, f0, t, sr)
    sp = pw.cheaptrick(x, f0, t, sr)
    ap = pw.d4c(x, f0, t, sr)
    voiced_src = f0 > 0
    # time map: voiced runs are slowed down by a per-run factor, consonants keep their length;
    # pos[i] = output frame where source frame i lands
    rate = np.ones(f0.size)
    edges = np.flatnonzero(np.diff(np.r_[0, voiced_src.astype(int), 0]))
    for a, b in zip(edges[::2], edges[1::2]):
        rate[a:b] = stretch[0] + (stretch[1] - stretch[0]) * rng.random()
    pos = np.concatenate([[0.0], np.cumsum(rate)])[:-1]
    src = np.interp(np.arange(0.0, pos[-1], 1.0), pos, np.arange(f0.size))
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, f0.size - 1)
    w = (src - lo)[:, None]
    sp_new = np.exp((1 - w) * np.log(sp[lo] + 1e-12) + w * np.log(sp[hi] + 1e-12))
    ap_new = (1 - w) * ap[lo] + w * ap[hi]
    voiced = voiced_src[lo] & voiced_src[hi]
    f0_new = melody(voiced, rng, low_midi, high_midi)
    y = pw.synthesize(np.ascontiguousarray(f0_new), np.ascontiguousarray(sp_new), np.ascontiguousarray(ap_new),
                      sr, FRAME_MS)
    y = y / max(1e-6, float(np.max(np.abs(y)))) * 0.5
    return y.astype(np.float32), f0_new.astype(np.float32)
