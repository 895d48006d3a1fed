"""Phone-labelled synthetic speech (and song) from the TTS engines on this machine.

Voices: flite (awb, rms, slt, kal, kal16) prints phone end times with ``-psdur``;
festival (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts) writes them with
``utt.save.segs``. Both use the CMU phone set, mapped here to :data:`PHONES`
(39 CMU phones + ``sil``; ``ax`` folds into ``ah`` as in the CMU dictionary).
espeak-ng (voices named ``espeak-<espeak voice>``, e.g. ``espeak-en-us+m3``) gives no
timings: its clips carry the phone sequence flite's lexicon gives for the same text and
NaN end times, to be filled by forced alignment (``training.encoder_train.align_clips``).
Festival voices of other languages (``festival-it-lp`` ...; see
:mod:`training.corpus.foreign_phones`) read the English text with their own rules; their
phones are mapped to the 40 classes, and a phone with no English neighbour gets the label
:data:`NO_CLASS` (left out of the loss).

Augmentation keeps the labels valid: WORLD (pyworld) analysis, then F0 scaled or
replaced by a sung melody (notes, glides, vibrato), the spectral envelope warped
along frequency (a vocal-tract-length change), and the time axis stretched.

A corpus is a list of :class:`Job` (voice, sentences, variants); each job becomes one
``.npz`` shard in the cache folder, named by a hash of the job, so re-running a
recipe reuses what is already there. Clips are stored at 16 kHz as int16.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from training.content_perturb import warp_envelope
from training.corpus.foreign_phones import FOREIGN_VOICES

SAMPLE_RATE = 16000
PHONES: tuple[str, ...] = (
    "sil", "aa", "ae", "ah", "ao", "aw", "ay", "b", "ch", "d", "dh", "eh", "er", "ey", "f", "g",
    "hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th",
    "uh", "uw", "v", "w", "y", "z", "zh")
PHONE_INDEX = {p: i for i, p in enumerate(PHONES)}
NO_CLASS = -1  # label of a segment whose sound has no English class (not trained on)
_ALIASES = {"pau": "sil", "h#": "sil", "#": "sil", "ssil": "sil", "brth": "sil", "ax": "ah",
            "axr": "er", "el": "l", "em": "m", "en": "n", "nx": "n", "hv": "hh", "dx": "t"}

# name -> (engine, engine voice, speaker). Speakers matter for held-out tests:
# flite kal/kal16 and festival kal_diphone are one person, slt is in both engines.
VOICES: dict[str, tuple[str, str, str]] = {
    "flite-awb": ("flite", "awb", "awb"),
    "flite-rms": ("flite", "rms", "rms"),
    "flite-slt": ("flite", "slt", "slt"),
    "flite-kal": ("flite", "kal", "kal"),
    "flite-kal16": ("flite", "kal16", "kal"),
    "festival-ked": ("festival", "ked_diphone", "ked"),
    "festival-kal": ("festival", "kal_diphone", "kal"),
    "festival-slt-hts": ("festival", "cmu_us_slt_arctic_hts", "slt"),
}

# Common words chosen to cover every phone (zh, oy, uh, th, ng ... included).
WORDS = """
the a an and but or if then so because when while after before under over into onto from with
without about around between through across along behind beyond i you he she we they it me him
her us them my your his our their this that these those here there where what which who whose how
why one two three four five six seven eight nine ten hundred thousand first second last next
every each some many few more most less all both other another same new old young good bad big
small long short high low hot cold warm cool dark light bright quiet loud soft hard easy heavy
early late fast slow happy sad angry tired busy ready sure true real strange usual unusual
measure treasure pleasure vision decision television garage beige casual leisure boy toy joy
voice choice noise point join enjoy annoy royal oil coin book look took good wood foot put push
pull could would should full sugar cook hook woman think thing thank three throw through thumb
thirty month truth bath earth health father mother brother sister weather together rather gather
breathe smooth this they them sing song ring long king young strong morning evening nothing
something running singing dancing music guitar piano rhythm melody voice chorus verse bridge
record studio mixer track tape sound noise signal channel level bass treble drum beat tempo note
chord key major minor sharp flat loud quiet echo delay reverb church house garden window door
table chair floor wall roof street city town village river ocean island mountain valley forest
field road bridge train plane car ship boat bicycle machine engine computer phone paper letter
story picture color orange yellow purple violet green blue red white black brown gray silver gold
water fire stone iron glass cotton leather butter cheese bread apple orange lemon cherry pepper
salt honey coffee juice dinner lunch breakfast kitchen bottle cup plate spoon knife fork
go come run walk jump climb swim fly drive ride sit stand sleep wake eat drink cook wash build
break fix open close push pull carry catch throw bring take give find lose keep hold send buy sell
pay show tell say speak talk sing listen hear watch see look feel touch smell taste know learn
teach think believe remember forget understand want need like love hate hope wish try start stop
finish begin end change move turn grow fall rise shine rain snow freeze melt burn shout whisper
judge bridge edge page age huge jeans jacket june july germany jazz chew church cheap watch
match teacher nature future picture question shoe shop ship fish wish nation ocean machine
yes yellow yard yesterday yet onion million view few beauty music cute huge
zoo zero lazy easy busy dozen prize size rose those was is his as has
very voice valley seven over above never ever river leave move give have of
hello happy who whole hand head heart horse hungry behind perhaps ahead
crisp splash street spring scratch strength twelfth months texts asked
""".split()


@dataclass(frozen=True)
class Variant:
    """How one clip is rendered. kind: 'orig' | 'speech' (F0 scaled) | 'sung' (melody)."""

    kind: str = "orig"
    f0_scale: float = 1.0   # 'speech': F0 factor; 'sung': melody centre relative to the voice's median
    warp: float = 1.0       # spectral-envelope warp: >1 moves formants up (shorter vocal tract)
    speed: float = 1.0      # >1 is faster
    seed: int = 0


@dataclass(frozen=True)
class Job:
    """One shard: ``voice`` speaks each of ``sentences`` once per variant."""

    voice: str
    sentences: tuple[str, ...]
    variants: tuple[Variant, ...] = (Variant(),)

    def key(self) -> str:
        blob = json.dumps([self.voice, list(self.sentences), [asdict(v) for v in self.variants]])
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


def voice_info(name: str) -> tuple[str, str, str]:
    """(engine, engine voice, speaker) of a voice name."""
    if name.startswith("espeak-"):
        return "espeak", name[len("espeak-"):], name
    if name in FOREIGN_VOICES:
        voice, speaker, _ = FOREIGN_VOICES[name]
        return "festival", voice, speaker
    if name not in VOICES:
        raise ValueError(f"unknown voice '{name}'; known: {', '.join([*VOICES, *FOREIGN_VOICES])} "
                         "or espeak-<espeak-ng voice>")
    return VOICES[name]


def make_sentences(n: int, seed: int, min_words: int = 4, max_words: int = 11) -> list[str]:
    """``n`` English word sequences drawn from :data:`WORDS` by a seeded RNG (some with commas)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), rng.integers(min_words, max_words + 1))]
        if len(words) > 6 and rng.random() < 0.4:
            words[int(rng.integers(2, len(words) - 2))] += ","
        out.append(" ".join(words))
    return out


def tools_available() -> dict[str, bool]:
    return {t: shutil.which(t) is not None for t in ("flite", "festival", "espeak-ng")}


def _phone_id(p: str) -> int:
    p = _ALIASES.get(p.lower(), p.lower())
    if p not in PHONE_INDEX:
        raise ValueError(f"phone '{p}' is not in the phone set {PHONES}; add it to _ALIASES")
    return PHONE_INDEX[p]


def _read_wav(path: Path) -> np.ndarray:
    import soundfile as sf
    import soxr

    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return soxr.resample(x, sr, SAMPLE_RATE).astype(np.float32) if sr != SAMPLE_RATE else x


def _synth_flite(voice: str, text: str, tmp: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    wav = tmp / "f.wav"
    out = subprocess.run(["flite", "-voice", voice, "-psdur", "-t", text, "-o", str(wav)],
                         capture_output=True, text=True, check=True).stdout
    pairs = [tok.rsplit(":", 1) for tok in out.split()]
    ends = np.array([float(t) for _, t in pairs])
    ids = np.array([_phone_id(p) for p, _ in pairs])
    return _read_wav(wav), ends, ids


def _synth_espeak(voice: str, text: str, tmp: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """espeak-ng audio; phones from flite's US lexicon (rms), end times unknown (NaN)."""
    wav = tmp / "e.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], capture_output=True, check=True)
    out = subprocess.run(["flite", "-voice", "rms", "-psdur", "-t", text, "-o", "none"],
                         capture_output=True, text=True, check=True).stdout
    ids = np.array([_phone_id(tok.rsplit(":", 1)[0]) for tok in out.split()])
    return _read_wav(wav), np.full(len(ids), np.nan), ids


def map_segments(ends: np.ndarray, names: list[str], phone_map: dict[str, tuple[str, ...]], voice: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Segments in a foreign phone set -> (end times, class ids): a phone mapped to two
    classes is split at its midpoint, one mapped to none gets :data:`NO_CLASS`."""
    out_ends, out_ids = [], []
    start = 0.0
    for end, name in zip(ends, names):
        if name not in phone_map:
            raise ValueError(f"voice '{voice}' said phone '{name}', which its map in "
                             "training/corpus/foreign_phones.py does not name; add it there")
        classes = phone_map[name]
        if len(classes) == 2:
            out_ends += [0.5 * (start + end), end]
            out_ids += [PHONE_INDEX[classes[0]], PHONE_INDEX[classes[1]]]
        else:
            out_ends.append(end)
            out_ids.append(PHONE_INDEX[classes[0]] if classes else NO_CLASS)
        start = float(end)
    return np.array(out_ends, dtype=np.float64), np.array(out_ids, dtype=np.int64)


def _synth_festival(voice: str, texts: list[str], tmp: Path, phone_map: dict[str, tuple[str, ...]] | None = None,
                    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    lines = [f"(voice_{voice})"]
    for i, text in enumerate(texts):
        t = text.replace('"', "").replace("\\", "")
        lines += [f'(set! utt (Utterance Text "{t}"))', "(utt.synth utt)",
                  f'(utt.save.segs utt "{tmp}/{i}.segs")', f"(utt.save.wave utt \"{tmp}/{i}.wav\" 'riff)"]
    script = tmp / "job.scm"
    script.write_text("\n".join(lines) + "\n")
    run = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"festival voice '{voice}' stopped (exit {run.returncode}) on one of {texts}: "
                           f"{' '.join(run.stderr.split())[-300:]}; leave out the sentence with the word it "
                           "cannot read (festival's Finnish voices stop on 'jazz' at the end of a sentence) or the voice")
    out = []
    for i in range(len(texts)):
        rows = [ln.split() for ln in (tmp / f"{i}.segs").read_text().splitlines()]
        rows = [r for r in rows if len(r) == 3 and re.match(r"^[0-9.]+$", r[0])]
        ends = np.array([float(r[0]) for r in rows])
        if phone_map is None:
            ids = np.array([_phone_id(r[2]) for r in rows])
        else:
            ends, ids = map_segments(ends, [r[2] for r in rows], phone_map, voice)
        out.append((_read_wav(tmp / f"{i}.wav"), ends, ids))
    return out


def _melody(n_frames: int, frame_s: float, centre_hz: float, rng: np.random.Generator) -> np.ndarray:
    """A singing-like F0 contour: notes of a major scale, glides between them, delayed vibrato."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, -1, -3, -5])
    f0 = np.zeros(n_frames)
    pos, prev = 0, None
    while pos < n_frames:
        dur = int(rng.uniform(0.15, 0.7) / frame_s)
        semis = float(rng.choice(scale)) + rng.normal(0.0, 0.1)
        seg = np.full(max(dur, 1), semis)
        if prev is not None:  # portamento into the note
            g = min(len(seg), int(rng.uniform(0.02, 0.09) / frame_s))
            seg[:g] = np.linspace(prev, semis, g, endpoint=False)
        t = np.arange(len(seg)) * frame_s
        depth = rng.uniform(0.0, 0.6) * np.clip((t - rng.uniform(0.1, 0.3)) / 0.15, 0, 1)
        seg = seg + depth * np.sin(2 * np.pi * rng.uniform(4.8, 6.8) * t + rng.uniform(0, 6.3))
        f0[pos:pos + len(seg)] = seg[: n_frames - pos]
        pos += len(seg)
        prev = semis
    return centre_hz * 2.0 ** (f0 / 12.0)


def render_variant(x: np.ndarray, ends: np.ndarray, v: Variant) -> tuple[np.ndarray, np.ndarray]:
    """WORLD resynthesis of ``x`` (16 kHz) under ``v``; returns (audio, scaled phone ends)."""
    from svc_dsp.features.f0_world import load_pyworld

    if v.kind == "orig":
        return x, ends
    pw = load_pyworld()
    rng = np.random.default_rng(v.seed)
    fp = 5.0
    xd = x.astype(np.float64)
    f0, t = pw.dio(xd, SAMPLE_RATE, frame_period=fp, f0_floor=60.0, f0_ceil=500.0)
    f0 = pw.stonemask(xd, f0, t, SAMPLE_RATE)
    sp = pw.cheaptrick(xd, f0, t, SAMPLE_RATE)
    ap = pw.d4c(xd, f0, t, SAMPLE_RATE)
    voiced = f0 > 0
    med = float(np.median(f0[voiced])) if voiced.any() else 120.0
    if v.kind == "sung":
        new = _melody(len(f0), fp / 1000.0, med * v.f0_scale, rng)
        f0 = np.where(voiced, new, 0.0)
    else:
        f0 = f0 * v.f0_scale
    if v.warp != 1.0:
        sp = warp_envelope(sp, v.warp)
    if v.speed != 1.0:
        n_new = max(2, int(round(len(f0) / v.speed)))
        src = np.minimum(np.arange(n_new) * v.speed, len(f0) - 1)
        idx = np.round(src).astype(int)
        f0 = f0[idx]
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, len(sp) - 1)
        w = (src - lo)[:, None]
        sp = np.exp((1 - w) * np.log(sp[lo] + 1e-16) + w * np.log(sp[hi] + 1e-16))
        ap = (1 - w) * ap[lo] + w * ap[hi]
        ends = ends / v.speed
    y = pw.synthesize(np.ascontiguousarray(f0), np.ascontiguousarray(sp), np.ascontiguousarray(ap),
                      SAMPLE_RATE, fp).astype(np.float32)
    peak = float(np.abs(y).max()) or 1.0
    return y * (min(0.99, float(np.abs(x).max())) / peak), ends


def run_job(job: Job) -> dict[str, np.ndarray]:
    """Synthesise one job -> arrays: audio (int16, clips concatenated), lengths, seg_ends (s),
    seg_phones, seg_counts, clip_sentence, clip_variant (index into job.variants)."""
    engine, voice, _ = voice_info(job.voice)
    with tempfile.TemporaryDirectory(prefix="synth-") as d:
        tmp = Path(d)
        if engine == "flite":
            base = [_synth_flite(voice, s, tmp) for s in job.sentences]
        elif engine == "espeak":
            base = [_synth_espeak(voice, s, tmp) for s in job.sentences]
        else:
            phone_map = FOREIGN_VOICES[job.voice][2] if job.voice in FOREIGN_VOICES else None
            base = _synth_festival(voice, list(job.sentences), tmp, phone_map)
    audio, lengths, s_ends, s_ph, s_n, c_sent, c_var = [], [], [], [], [], [], []
    for si, (x, ends, ids) in enumerate(base):
        for vi, v in enumerate(job.variants):
            y, e = render_variant(x, ends, v)
            audio.append(np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16))
            lengths.append(len(y))
            s_ends.append(e)
            s_ph.append(ids)
            s_n.append(len(ids))
            c_sent.append(si)
            c_var.append(vi)
    return {"audio": np.concatenate(audio), "lengths": np.array(lengths), "seg_ends": np.concatenate(s_ends),
            "seg_phones": np.concatenate(s_ph).astype(np.int16), "seg_counts": np.array(s_n),
            "clip_sentence": np.array(c_sent), "clip_variant": np.array(c_var)}


def _build_one(args: tuple[Job, str]) -> str:
    job, path = args
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    arrays = run_job(job)
    tmp = path + ".partial.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def build_corpus(jobs: list[Job], cache_dir: str | os.PathLike, processes: int = 2) -> list[Path]:
    """Make sure every job has its shard in ``cache_dir``; return the shard paths in job order."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    paths = [cache / f"{j.voice}-{j.key()}.npz" for j in jobs]
    todo = [(j, str(p)) for j, p in zip(jobs, paths) if not p.is_file()]
    if todo:
        if processes > 1 and len(todo) > 1:
            with get_context("spawn").Pool(processes) as pool:
                for _ in pool.imap_unordered(_build_one, todo):
                    pass
        else:
            for t in todo:
                _build_one(t)
    return paths


@dataclass
class Clip:
    """One labelled clip: audio float32 at 16 kHz, phone end times (s) and phone ids."""

    audio: np.ndarray
    ends: np.ndarray
    phones: np.ndarray
    voice: str
    variant: Variant
    text: str


def load_shard(path: str | os.PathLike, job: Job) -> list[Clip]:
    z = np.load(path)
    a_off = np.concatenate([[0], np.cumsum(z["lengths"])])
    s_off = np.concatenate([[0], np.cumsum(z["seg_counts"])])
    clips = []
    for i in range(len(z["lengths"])):
        clips.append(Clip(z["audio"][a_off[i]:a_off[i + 1]].astype(np.float32) / 32768.0,
                          z["seg_ends"][s_off[i]:s_off[i + 1]], z["seg_phones"][s_off[i]:s_off[i + 1]],
                          job.voice, job.variants[int(z["clip_variant"][i])], job.sentences[int(z["clip_sentence"][i])]))
    return clips


def frame_labels(ends: np.ndarray, phones: np.ndarray, n_samples: int, hop: int) -> np.ndarray:
    """Phone id of frames j = 0..ceil(N/hop)-1, frame j taken at time (j+1)*hop (the engine grid);
    :data:`NO_CLASS` where the segment has no class."""
    n = -(-n_samples // hop)
    t = (np.arange(n) + 1) * hop / SAMPLE_RATE
    k = np.searchsorted(ends, t, side="right")
    out = np.full(n, PHONE_INDEX["sil"], dtype=np.int64)
    inside = k < len(ends)
    out[inside] = phones[k[inside]]
    return out
