"""Build the Whisper-unit demo voice (family 'hpnw') from data this recipe synthesises itself.

    python -m training.recipes.demo_whisper [--tiny] [--out presets/models/demo-whisper]

1. Data: the same generator as :mod:`training.recipes.demo_voice` (imported, not copied):
   festival's ``cmu_us_slt_arctic_hts`` re-sung by WORLD on melodies A3-E5 as the target
   "demo", plus further festival and espeak-ng voices sung the same way as extra speakers
   (the decoder must learn to take timbre from the speaker row, not from the units, which
   carry much of the source's timbre at Whisper's middle layers). None of them is a source of
   ``python -m benchmarks quality``.
2. ``prepare`` -> ``features`` (encoder ``whisper-base-l4``: units computed on the model grid
   the way the windowed stream computes them; F0 by ``dio``, which is fast; harvest is too
   slow for this budget) -> ``fit`` (a budget of ``--fit-minutes`` CPU-minutes, 1 thread,
   checkpoints every ``eval_interval`` steps, so the run can be exported at any time)
   -> ``export`` into ``--out`` (speaker "demo" first), reloaded and compared through the
   engine's loader -> ``train index`` (feature retrieval bank of every speaker).
3. The preset beside the models folder (``--preset-name``, default ``demo-whisper``).

``--tiny``: about 25 s of the target, no extra voices, a small decoder, 12 steps (tests).
Intermediate files go to ``--work`` (default ``out/demo_whisper``); a re-run reuses the
generated audio, the features and the run (training resumes from its newest checkpoint).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEAKER = "demo"
ENCODER = "whisper-base-l4"
F0_METHOD = "dio"
# the demo_voice recipe's voices (less msu_ru_nsh_clunits, which does not speak here) plus four more espeak-ng accents/variants: more speakers,
# each mapped to its own audio, teach the shared decoder to ignore the units' timbre
EXTRA_VOICES = ("festival:lp_diphone", "festival:pc_diphone", "festival:suo_fi_lj_diphone",
                "festival:hy_fi_mv_diphone", "festival:czech_dita", "festival:czech_ph",
                "festival:upc_ca_ona_hts", "espeak:en-gb+m1", "espeak:en-us+f2",
                "espeak:en-gb-scotland+m4", "espeak:en-029+f3", "espeak:en-gb-x-rp+f4", "espeak:en-us-nyc+m2",
                "espeak:en-gb-x-gbclan+f5", "espeak:en-gb-x-gbcwmd+m6")
TARGET_MINUTES = 12.0
EXTRA_MINUTES = 1.0
FIT_MINUTES = 50.0
INDEX_FRAMES = 3000  # 3 MB of float16 512-dim units (the bundle budget, tests/training/test_encoder_recipe.py)
ARCHITECTURE = {"channels": 128, "kernel_size": 3, "dilations": [1, 2, 4, 8, 1, 2], "speaker_dim": 32,
                "n_harmonics": 64, "n_noise_bands": 24, "amplitudes": "envelope", "n_envelope": 64}
TINY_ARCHITECTURE = {"channels": 32, "dilations": [1, 2, 4], "n_harmonics": 32}


def preset_text(model: str) -> str:
    """The preset that selects the voice (model reference by catalog name)."""
    return f"""format_version = 1
model = "{model}"
description = "The demo singer on Whisper units (windowed, about 230 ms live): for renders and delay-compensated live use."

[parameters]
transpose = 0.0
f0_method = "yin"
loudness_match = 1.0
mix = 1.0
"""


def generate_data(raw: Path, *, tiny: bool, seed: int, jobs: int, extras: list[str],
                  target_minutes: float, extra_minutes: float) -> float:
    """Sing the target and each extra voice into ``raw/<speaker>/`` (reused when present); seconds."""
    from training.recipes.demo_voice import RANGE, extra_seed, extra_speaker, generate

    secs = generate(raw, 0.4 if tiny else target_minutes, seed, jobs, "cmu_us_slt_arctic_hts", 0.0, RANGE)
    for voice in extras:
        secs += generate(raw, extra_minutes, extra_seed(seed, voice), jobs, voice, 0.0, RANGE,
                         speaker=extra_speaker(voice))
    return secs


def record_budget(model_dir: Path, run_dir: Path) -> None:
    """Write the fit's budget (the recipe and every fit session the run recorded: steps, limits,
    threads, minutes used) into model.json's 'training' block and refresh its line in SHA256SUMS."""
    from svc_dsp.fileops import write_atomic
    from svc_dsp.models.folder import MANIFEST_NAME, sha256_file
    from training.fit import SESSIONS_NAME

    sessions_path = run_dir / SESSIONS_NAME
    sessions = json.loads(sessions_path.read_text(encoding="utf-8")) if sessions_path.is_file() else []
    cfg_path = model_dir / "model.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg.setdefault("training", {})["budget"] = {
        "recipe": "training.recipes.demo_whisper", "f0_method": F0_METHOD, "sessions": sessions}
    write_atomic(cfg_path, (json.dumps(cfg, indent=2) + "\n").encode())
    sums = model_dir / MANIFEST_NAME
    lines = [ln for ln in sums.read_text(encoding="utf-8").splitlines() if not ln.endswith("  model.json")]
    lines.append(f"{sha256_file(cfg_path)}  model.json")
    write_atomic(sums, ("\n".join(sorted(lines, key=lambda ln: ln.split("  ", 1)[1])) + "\n").encode())


def index_target(model_dir: Path, prep: Path, frames: int = INDEX_FRAMES) -> Path:
    """The feature-retrieval index of the target speaker only (``frames`` units drawn evenly, seeded):
    retrieval pulls a source toward the voice it converts to; the other speakers' banks would
    only weigh on the bundle."""
    import numpy as np

    from svc_dsp.models.retrieval import build_banks, write_index
    from training.features import read_features_meta

    arrays = []
    for f in sorted((prep / "features" / SPEAKER).glob("*.npz")):
        with np.load(f) as z:
            arrays.append(z["units"])
    banks = build_banks({SPEAKER: arrays}, max_frames=frames, seed=0)
    sha = str(read_features_meta(prep)["encoder"]["sha256"])
    return write_index(model_dir, banks, {"encoder_sha256": sha, "max_frames": str(frames), "seed": "0"},
                       overwrite=True)


def train_config(prep: Path, tiny: bool, fit_minutes: float, wall_minutes: float | None = None) -> dict:
    if tiny:
        return {"prep_dir": str(prep), "max_steps": 12, "batch_size": 4, "segment_seconds": 0.5,
                "log_interval": 6, "eval_interval": 6, "keep_ckpts": 2, "seed": 1, "val_max_seconds": 2.0,
                "architecture": TINY_ARCHITECTURE}
    wall = {"time_limit_minutes": wall_minutes} if wall_minutes else {}
    return {**wall, "prep_dir": str(prep), "max_steps": 100000, "cpu_limit_minutes": fit_minutes, "batch_size": 8,
            "segment_seconds": 1.0, "learning_rate": 2e-3, "lr_decay": 0.99, "log_interval": 100,
            "eval_interval": 200, "keep_ckpts": 2, "seed": 1, "f0_range": [50.0, 1100.0], "all_in_mem": True,
            "architecture": ARCHITECTURE}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.recipes.demo_whisper", description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a 25-second, 12-step smoke run (tests)")
    ap.add_argument("--out", type=Path, default=ROOT / "presets" / "models" / "demo-whisper",
                    help="model folder to write")
    ap.add_argument("--preset", type=Path, default=None,
                    help="preset file to write (default: presets/<out name>.toml beside the models folder; "
                         "'none' writes no preset)")
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "demo_whisper", help="intermediate files")
    ap.add_argument("--fit-minutes", type=float, default=FIT_MINUTES,
                    help=f"training budget in CPU-minutes of the training process (default {FIT_MINUTES:g})")
    ap.add_argument("--fit-wall-minutes", type=float, default=None,
                    help="also stop training after this many minutes of wall time (a shared machine's deadline)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1)")
    ap.add_argument("--jobs", type=int, default=2, help="processes for synthesis and features (default 2)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--minutes", type=float, default=TARGET_MINUTES,
                    help=f"minutes of the target's singing (default {TARGET_MINUTES:g})")
    ap.add_argument("--extra-voices", default=None,
                    help=f"comma-separated extra voices or 'none' (default: {len(EXTRA_VOICES)} festival/espeak "
                         "voices; --tiny: none)")
    ap.add_argument("--extra-minutes", type=float, default=EXTRA_MINUTES,
                    help=f"minutes per extra voice (default {EXTRA_MINUTES:g})")
    ap.add_argument("--data-only", action="store_true", help="generate and prepare the data, then stop")
    ap.add_argument("--no-fit", action="store_true",
                    help="export the run's newest checkpoint as it is (e.g. while a long fit still runs)")
    args = ap.parse_args(argv)
    from training.recipes.demo_voice import pick_extra_voices

    try:
        extras, names = pick_extra_voices(args.extra_voices, args.tiny, EXTRA_VOICES)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import torch

    from svc_dsp.fileops import write_atomic
    from training.export import export
    from training.features import extract_features
    from training.fit import fit
    from training.prepare import prepare

    torch.set_num_threads(args.threads)
    work = args.work.resolve()
    t0 = time.monotonic()
    raw, prep = work / "dataset_raw", work / "prepared"
    if not args.no_fit:
        try:
            secs = generate_data(raw, tiny=args.tiny, seed=args.seed, jobs=args.jobs, extras=extras,
                                 target_minutes=args.minutes, extra_minutes=args.extra_minutes)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(f"[demo-whisper] {secs / 60:.1f} min of singing in '{raw}' ({time.monotonic() - t0:.0f} s)")
        if not (prep / "prepare.json").is_file():
            val = {SPEAKER: 1 if args.tiny else 3, **{spk: 1 for spk in names}}
            print(prepare(raw, prep, sample_rate=24000, val_per_speaker=val, jobs=args.jobs).summary())
        if args.data_only:
            return 0
        frep = extract_features(prep, encoder_folder_or_name=ENCODER, f0_method=F0_METHOD, jobs=args.jobs)
        print(frep.summary())
        if frep.failed:
            return 1
        cfg_path = work / "train.json"
        write_atomic(cfg_path, json.dumps(train_config(prep, args.tiny, args.fit_minutes, args.fit_wall_minutes), indent=1))
        t_fit = time.monotonic()
        res = fit(work / "run", cfg_path)
        print(f"[demo-whisper] fit: step {res.step}, {time.monotonic() - t_fit:.0f} s, {res.steps_per_s:.2f} "
              f"steps/s, losses {res.losses}")
    xrep = export(work / "run", args.out, name=args.out.name, overwrite=True)
    record_budget(args.out, work / "run")
    index_target(args.out, prep)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    preset = None
    if str(args.preset) != "none":
        preset = args.preset or args.out.parent.parent / f"{args.out.name}.toml"
        preset.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(preset, preset_text(args.out.name))
    print(f"[demo-whisper] exported '{xrep.folder}' ({size / 1e6:.2f} MB with its index, encoder {xrep.encoder}, "
          f"step {xrep.step}); preset {preset}; total {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
