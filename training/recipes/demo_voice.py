"""Build the bundled demo voice from data this recipe synthesises itself.

    python -m training.recipes.demo_voice [--tiny] [--out presets/models/demo]

1. A target singer: festival's ``cmu_us_slt_arctic_hts`` speaks varied sentences, and WORLD
   re-sings them on generated melodies from A3 to E5 (``--range``; held notes, vibrato, glides;
   ``--parlando`` adds phrases at speaking pace); about 14 minutes of audio (``--tiny``: about 30 s, yin F0, 12 steps of a small model).
2. ``prepare`` -> ``features`` (encoder ``svc-phone-v1``, harvest F0) -> ``fit`` (a budget of
   65 CPU-minutes, on 1 thread by default) -> ``export`` into ``--out`` (speaker
   "demo"), checked by reloading through the engine's loader. ``--content-variants K
   --content-augment S`` trains with content augmentation (off: it cost intelligibility on
   this data, docs/training.md).
3. The preset ``presets/demo.toml`` (model "demo", transpose 0, yin, loudness_match 1, mix 1).

``--extra-voices festival:NAME,espeak:NAME,...`` sings further synthetic voices the same way
(``--extra-minutes`` each, generated in batches, so a little more) as extra speakers of the
same model, named ``<engine>-<name>`` after the target "demo", which stays the first (default)
speaker; each gives one validation piece.

Intermediate files go to ``--work`` (default ``out/demo_voice``); re-running reuses the
generated audio and features and resumes training.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SPEAKER = "demo"
# A2-E5 was tried (male voices at their own pitch come out breathy from an A3-E5 singer): spoken
# inputs mixed, sung ones lost words (awb 0.74 -> 1.03 WER), docs/training.md
RANGE = "A3-E5"
PARLANDO = 0.0  # 0.3 was tried: speech similarity to the target fell (docs/training.md)
# content augmentation: 4 variants at a share of 0.5 was tried, from scratch and as a fine-tune;
# both lost words on every source, the target's own speech included (docs/training.md)
CONTENT_VARIANTS = 0
CONTENT_AUGMENT = 0.0
# Further voices sung beside the target as extra speakers (not --tiny): the decoder also learns
# to read units that its encoder took from other voices. With these twelve the demo lost fewer
# words of voices it never heard, spoken and sung (docs/training.md). None is a benchmark source.
EXTRA_VOICES = ("festival:lp_diphone", "festival:pc_diphone", "festival:suo_fi_lj_diphone",
                "festival:hy_fi_mv_diphone", "festival:czech_dita", "festival:czech_ph",
                "festival:msu_ru_nsh_clunits", "festival:upc_ca_ona_hts", "espeak:en-gb+m1", "espeak:en-us+f2",
                "espeak:en-gb-scotland+m4", "espeak:en-029+f3")
EXTRA_MINUTES = 1.2  # per extra voice (--extra-voices)
PRESET = """format_version = 1
model = "demo"
description = "Bundled demo voice: a synthetic singer (festival slt re-sung with WORLD)."

[parameters]
transpose = 0.0
f0_method = "yin"
loudness_match = 1.0
mix = 1.0
"""


def _make_phrase(args: tuple[int, int, str, float, tuple[int, int]]) -> np.ndarray:
    """One sung phrase (2-3 sentences) at 24 kHz, with pauses around it; seeded by its index.

    A share ``parlando`` of them keeps speech's pace on the same kind of melody (voiced runs
    x1.0-1.25 instead of x1.3-2.6), so a voice also learns consonant transitions at their
    natural speed. With a share of 0 no extra random draw is made (the phrases of earlier
    versions of this recipe come out unchanged).
    """
    from svc_dsp.audio.resample import resample
    from training.recipes.singing import sentences, sing, speak

    idx, seed, voice, share, (low, high) = args
    rng = np.random.default_rng([seed, idx])
    text = " ".join(sentences(int(rng.integers(2, 4)), rng))
    parlando = share > 0 and rng.random() < share
    x, sr = speak(text, voice)
    x = resample(x.astype(np.float32), sr, 24000)
    y, _ = sing(x, 24000, rng, low_midi=low, high_midi=high, stretch=(1.0, 1.25) if parlando else (1.3, 2.6))
    y *= 10.0 ** (rng.uniform(-8.0, 0.0) / 20.0)  # level variety; prepare normalises it
    pad = lambda s: np.zeros(int(s * 24000), np.float32)  # noqa: E731
    return np.concatenate([pad(rng.uniform(0.3, 0.8)), y, pad(rng.uniform(0.3, 0.8))])


def generate(raw: Path, minutes: float, seed: int, jobs: int, voice: str, parlando: float = 0.0,
             note_range: str = RANGE, speaker: str = SPEAKER) -> float:
    """Write ``raw/<speaker>/phrase_NNNN.wav`` until ``minutes`` of singing exist; returns seconds.

    The settings that shape the phrases are kept in ``raw/<speaker>/settings.json``; phrases
    made with other settings are never mixed in (ValueError naming both)."""
    from svc_dsp.audio.io import save_audio
    from svc_dsp.fileops import write_atomic
    from training.recipes.singing import note_number

    low_name, _, high_name = note_range.partition("-")
    low, high = note_number(low_name), note_number(high_name)
    if high - low < 12:
        raise ValueError(f"range '{note_range}' spans {high - low} semitones; give at least an octave, "
                         f"low-high, e.g. {RANGE}")
    d = raw / speaker
    d.mkdir(parents=True, exist_ok=True)
    settings = {"seed": seed, "voice": voice, "parlando": parlando, "range_midi": [low, high]}
    stamp = d / "settings.json"
    done = sorted(d.glob("phrase_*.wav"))
    old = json.loads(stamp.read_text()) if stamp.is_file() else None
    if done and old is None:  # phrases of a recipe version before the stamp: A3-E5
        old = {**settings, "range_midi": [57, 76]}
    if done and old != settings:
        raise ValueError(f"'{d}' holds phrases made with {old}, not {settings}; use another --work folder "
                         "or delete this one")
    write_atomic(stamp, json.dumps(settings))
    import soundfile as sf

    total = sum(sf.info(str(p)).duration for p in done)
    idx = len(done)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        while total < minutes * 60.0:
            batch = list(pool.map(_make_phrase, [(i, seed, voice, parlando, (low, high)) for i in range(idx, idx + 2 * max(1, jobs))]))
            for y in batch:
                save_audio(d / f"phrase_{idx:04d}.wav", y, 24000, subtype="PCM_16")
                idx += 1
                total += len(y) / 24000.0
    return total


def extra_speaker(voice: str) -> str:
    """Speaker (folder) name of an extra voice: ``<engine>-<name>``, e.g. ``festival-lp_diphone``.

    Every engine name sorts after "demo", so the target stays the model's first (default) speaker.
    Raises ValueError for a voice that is not ``festival:NAME``, ``flite:NAME`` or ``espeak:NAME``.
    """
    from training.recipes.singing import ENGINES

    engine, _, name = voice.partition(":")
    if engine not in ENGINES or not name or "/" in name:
        raise ValueError(f"extra voice '{voice}': give ENGINE:NAME with ENGINE festival, flite or espeak, "
                         f"e.g. festival:lp_diphone or espeak:en-gb+m1")
    return f"{engine}-{name}"


def pick_extra_voices(arg: str | None, tiny: bool, default: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The extra voices a recipe sings and their speaker names, from ``--extra-voices`` (None: ``default``,
    or none with ``--tiny``; 'none': none); each voice checked by :func:`check_voices`. ValueError
    (one line) naming a voice given twice or one that does not speak here."""
    if arg is None:
        extras = [] if tiny else list(default)
    else:
        extras = [v.strip() for v in arg.split(",") if v.strip() and v.strip() != "none"]
    names = [extra_speaker(v) for v in extras]
    if len(set(names)) != len(names):
        raise ValueError(f"--extra-voices names a voice twice: {arg}")
    check_voices(extras)
    return extras, names


def check_voices(voices: list[str]) -> None:
    """Speak one word with each voice; ValueError naming the voice, the error and (for the
    festival voices of other languages) the Debian package that installs it."""
    import subprocess

    from training.corpus.foreign_phones import PACKAGES
    from training.recipes.singing import speak

    for voice in voices:
        try:
            speak("hello", voice)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as e:  # festival: no wav written
            pkg = PACKAGES.get(voice.partition(":")[2])
            fix = f"install it (apt install {pkg})" if pkg else "install it"
            raise ValueError(f"voice '{voice}' does not speak here ({e}); {fix} or leave it out of "
                             "--extra-voices") from e


def extra_seed(seed: int, voice: str) -> int:
    """Seed of an extra voice's phrases: its own sentences and melodies, whatever the list order."""
    return (seed * 1_000_003 + zlib.crc32(voice.encode())) % 2**31


def train_config(prep: Path, tiny: bool, fit_minutes: float, content_augment: float = CONTENT_AUGMENT) -> dict:
    if tiny:
        return {"prep_dir": str(prep), "max_steps": 12, "batch_size": 4, "segment_seconds": 0.5,
                "log_interval": 6, "eval_interval": 6, "keep_ckpts": 2, "seed": 1, "val_max_seconds": 2.0,
                "content_augment": content_augment,
                "architecture": {"channels": 32, "dilations": [1, 2, 4], "n_harmonics": 32}}
    return {"prep_dir": str(prep), "max_steps": 100000, "cpu_limit_minutes": fit_minutes, "batch_size": 8,
            "segment_seconds": 1.0, "learning_rate": 2e-3, "lr_decay": 0.99, "log_interval": 100, "eval_interval": 500,
            "keep_ckpts": 2, "seed": 1, "f0_range": [50.0, 1100.0], "content_augment": content_augment}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.recipes.demo_voice", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a 30-second, 12-step smoke run (tests)")
    ap.add_argument("--out", type=Path, default=ROOT / "presets" / "models" / "demo", help="model folder to write")
    ap.add_argument("--preset", type=Path, default=None,
                    help="preset file to write (default: presets/demo.toml beside the models folder)")
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "demo_voice", help="intermediate files")
    ap.add_argument("--encoder", default="svc-phone-v1", help="content encoder: catalog name or folder")
    ap.add_argument("--minutes", type=float, default=None, help="minutes of singing to generate (default 14)")
    ap.add_argument("--fit-minutes", type=float, default=65.0,
                    help="training budget in CPU-minutes of the training process (default 65)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for training (default 1: on a shared 2-core machine more threads were "
                         "4x slower, not faster)")
    ap.add_argument("--jobs", type=int, default=2, help="processes for synthesis and features (default 2)")
    ap.add_argument("--voice", default="cmu_us_slt_arctic_hts", help="festival voice, or flite:slt")
    ap.add_argument("--f0-method", default=None, help="F0 tracker for features (default harvest; --tiny: yin)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--range", default=RANGE, dest="note_range",
                    help=f"lowest-highest note of the melodies (default {RANGE})")
    ap.add_argument("--parlando", type=float, default=PARLANDO,
                    help=f"share of phrases sung at speaking pace (default {PARLANDO})")
    ap.add_argument("--content-variants", type=int, default=CONTENT_VARIANTS,
                    help=f"speaker-perturbed copies per piece (default {CONTENT_VARIANTS})")
    ap.add_argument("--content-augment", type=float, default=CONTENT_AUGMENT,
                    help=f"share of training crops with a perturbed copy's units (default {CONTENT_AUGMENT}; "
                         f"needs --content-variants)")
    ap.add_argument("--extra-voices", default=None,
                    help="comma-separated voices (festival:NAME, flite:NAME, espeak:NAME) sung as further speakers "
                         "beside the target, so the decoder also learns other voices' units, or 'none' "
                         f"(default: {len(EXTRA_VOICES)} festival and espeak voices; --tiny: none)")
    ap.add_argument("--extra-minutes", type=float, default=EXTRA_MINUTES,
                    help=f"minutes of singing per extra voice (default {EXTRA_MINUTES:g})")
    args = ap.parse_args(argv)
    try:
        extras, extra_names = pick_extra_voices(args.extra_voices, args.tiny, EXTRA_VOICES)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.content_augment > 0 and args.content_variants < 1:
        print(f"error: --content-augment {args.content_augment:g} needs speaker-perturbed units; add "
              f"--content-variants 4 (or leave --content-augment at 0)", file=sys.stderr)
        return 2

    import torch

    from svc_dsp.fileops import write_atomic
    from training.export import export
    from training.features import extract_features
    from training.fit import fit
    from training.prepare import prepare

    torch.set_num_threads(args.threads)
    minutes = args.minutes if args.minutes is not None else (0.4 if args.tiny else 14.0)
    work = args.work.resolve()  # the train config resolves relative paths against its own folder
    t0 = time.monotonic()
    try:
        raw = work / "dataset_raw"
        stray = sorted(d.name for d in raw.iterdir() if d.is_dir() and d.name not in (SPEAKER, *extra_names)) \
            if raw.is_dir() else []
        if stray:
            raise ValueError(f"'{raw}' holds speakers {stray} that --extra-voices does not name; name them again, "
                             "use another --work folder or delete those folders")
        secs = generate(raw, minutes, args.seed, args.jobs, args.voice, args.parlando,
                        args.note_range)
        for voice, spk in zip(extras, extra_names):
            secs += generate(raw, args.extra_minutes, extra_seed(args.seed, voice), args.jobs,
                             voice, args.parlando, args.note_range, speaker=spk)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"[demo] {secs / 60:.1f} min of singing in '{raw}' ({time.monotonic() - t0:.0f} s)")
    val = {SPEAKER: 1 if args.tiny else 4, **{spk: 1 for spk in extra_names}}
    rep = prepare(raw, work / "prepared", sample_rate=24000, val_per_speaker=val, jobs=args.jobs)
    print(rep.summary())
    f0_method = args.f0_method or ("yin" if args.tiny else "harvest")
    frep = extract_features(work / "prepared", encoder_folder_or_name=args.encoder, f0_method=f0_method,
                            jobs=args.jobs, content_variants=args.content_variants)
    print(frep.summary())
    cfg_path = work / "train.json"
    write_atomic(cfg_path, json.dumps(train_config(work / "prepared", args.tiny, args.fit_minutes,
                                                   args.content_augment), indent=1))
    t_fit = time.monotonic()
    res = fit(work / "run", cfg_path)
    print(f"[demo] fit: step {res.step}, {time.monotonic() - t_fit:.0f} s, {res.steps_per_s:.2f} steps/s, "
          f"{res.audio_s_per_s:.1f} audio-s/s, losses {res.losses}")
    xrep = export(work / "run", args.out, name=SPEAKER, overwrite=True)
    size_mb = xrep.size_bytes / 1e6
    if size_mb > 10.0:
        print(f"error: the model folder is {size_mb:.1f} MB; the demo must stay under 10 MB", file=sys.stderr)
        return 1
    preset = args.preset or args.out.parent.parent / "demo.toml"
    preset.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(preset, PRESET)
    print(f"[demo] exported '{xrep.folder}' ({size_mb:.2f} MB, encoder {xrep.encoder}, step {xrep.step}); "
          f"preset '{preset}'; total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
