"""``svc-host train prepare|features|fit|export``: thin argparse faces of the four stages.

The lead's CLI calls :func:`add_train_subcommands` on the ``train`` sub-parser's subparsers
object; each subcommand sets ``func`` to a function ``(args) -> int`` (exit status). Nothing
heavy is imported here: torch and the stages load inside the command functions, so
``svc-host --help`` stays instant. ``python -m training.cli ...`` runs the same commands alone.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def _cmd_prepare(args: argparse.Namespace) -> int:
    from training.prepare import prepare

    rep = prepare(args.dataset_raw, args.out_dir, sample_rate=args.sample_rate, target_lufs=args.target_lufs,
                  skip_loudnorm=args.skip_loudnorm, min_s=args.min_s, max_s=args.max_s,
                  val_per_speaker=args.val_per_speaker, jobs=args.jobs)
    print(rep.summary())
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from training.features import extract_features

    rep = extract_features(args.prep_dir, encoder_folder_or_name=args.encoder, f0_method=args.f0_method,
                           jobs=args.jobs, f0_range=(args.f0_min, args.f0_max),
                           content_variants=args.content_variants)
    print(rep.summary())
    return 1 if rep.failed and not rep.computed and not rep.up_to_date else 0


def _cmd_fit(args: argparse.Namespace) -> int:
    if args.nproc_per_node > 1 and int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               str(args.nproc_per_node), "-m", "training.fit_main", str(args.run_dir)]
        if args.config is not None:
            cmd.append(str(args.config))
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        return subprocess.call(cmd)
    import torch

    from training.fit import fit

    if args.threads:
        torch.set_num_threads(args.threads)
    res = fit(args.run_dir, args.config)
    print(f"finished at step {res.step}; newest checkpoint {res.checkpoint}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from training.export import export

    rep = export(args.run, args.out, name=args.name, bundle_encoder=args.bundle_encoder, overwrite=args.overwrite)
    print(f"exported step {rep.step} to '{rep.folder}' ({rep.size_bytes / 1e6:.2f} MB, encoder: {rep.encoder}, "
          f"reload check max abs diff {rep.max_abs_diff:.2g})")
    return 0


def add_train_subcommands(subparsers: Any) -> None:
    """Register prepare, features, fit and export on an argparse subparsers object."""
    p = subparsers.add_parser("prepare", help="slice, resample and loudness-match dataset_raw/<speaker>/*",
                              description="Slice recordings at silences into 5-15 s pieces, resample to the "
                                          "model rate, mix to mono, match loudness, write file lists.")
    p.add_argument("dataset_raw", type=Path, help="folder with one sub-folder of audio files per speaker")
    p.add_argument("out_dir", type=Path, help="output folder (audio/, filelists/, speakers.json)")
    p.add_argument("--sample-rate", type=int, default=24000, help="model sample rate in Hz (default 24000)")
    p.add_argument("--target-lufs", type=float, default=-18.0, help="loudness target (default -18 LUFS)")
    p.add_argument("--skip-loudnorm", action="store_true", help="keep the recordings' levels")
    p.add_argument("--min-s", type=float, default=5.0, help="shortest piece in seconds (default 5)")
    p.add_argument("--max-s", type=float, default=15.0, help="longest piece in seconds (default 15)")
    p.add_argument("--val-per-speaker", type=int, default=2, help="validation pieces per speaker (default 2)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes (default 1)")
    p.set_defaults(func=_cmd_prepare)

    p = subparsers.add_parser("features", help="extract content units, F0 and loudness (cached)",
                              description="Per prepared piece: content units, energy, F0 and loudness; "
                                          "re-running only does what is missing or stale.")
    p.add_argument("prep_dir", type=Path, help="folder written by 'train prepare'")
    p.add_argument("--encoder", required=True, help="content-encoder catalog name (e.g. svc-phone-v1) or folder")
    p.add_argument("--f0-method", default="harvest", help="F0 tracker (default harvest; yin is fast)")
    p.add_argument("--f0-min", type=float, default=50.0, help="lowest F0 in Hz (default 50)")
    p.add_argument("--f0-max", type=float, default=1100.0, help="highest F0 in Hz (default 1100)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--content-variants", type=int, default=0, metavar="K",
                   help="also encode K speaker-perturbed copies of each piece (formants, pitch, tilt), "
                        "for the training config's content_augment (default 0 = none; 4 is a good start)")
    p.set_defaults(func=_cmd_features)

    p = subparsers.add_parser("fit", help="train; re-run the same command to resume",
                              description="Train the voice model. Resumes from the newest good checkpoint "
                                          "in RUN_DIR/checkpoints when re-run.")
    p.add_argument("run_dir", type=Path, help="run folder (checkpoints/, train.log)")
    p.add_argument("--config", "-c", type=Path, default=None,
                   help="JSON or TOML training config (default: the one saved by the first run)")
    p.add_argument("--nproc-per-node", type=int, default=1,
                   help="processes for distributed training via torchrun (default 1)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = default)")
    p.set_defaults(func=_cmd_fit)

    p = subparsers.add_parser("export", help="write a checked model folder from a run",
                              description="Export the newest good checkpoint (or the one given) to a model "
                                          "folder, reload it with the engine's loader and compare outputs.")
    p.add_argument("run", type=Path, help="run folder or checkpoints/step_NNNNNN folder")
    p.add_argument("out", type=Path, help="model folder to write")
    p.add_argument("--name", default=None, help="model name (default: the output folder's name)")
    p.add_argument("--bundle-encoder", action="store_true",
                   help="copy the content encoder into the model folder instead of referencing it by name")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(func=_cmd_export)

    p = subparsers.add_parser("index", help="add a feature-retrieval index (index_ratio) to a model folder",
                              description="Indexes the content units 'train features' extracted for each of the "
                                          "voice's speakers; the engine blends frames toward them by index_ratio.")
    p.add_argument("model", type=Path, help="the exported model folder")
    p.add_argument("prep_dir", type=Path, help="the prepared folder the voice was trained on (with features/)")
    p.add_argument("--max-frames", type=int, default=20000, help="frames kept per speaker (default 20000)")
    p.add_argument("--overwrite", action="store_true", help="rebuild an existing index")
    p.set_defaults(func=_cmd_index)


def _cmd_index(args: argparse.Namespace) -> int:
    from training.index import build_index

    path, notes = build_index(args.model, args.prep_dir, max_frames=args.max_frames, overwrite=args.overwrite)
    for n in notes:
        print(f"  {n}")
    print(f"feature index -> {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from svc_dsp.errors import SvcError

    ap = argparse.ArgumentParser(prog="python -m training.cli", description="svc-host training stages")
    sub = ap.add_subparsers(dest="stage", required=True, metavar="{prepare,features,fit,export,index}")
    add_train_subcommands(sub)
    args = ap.parse_args(argv)
    try:
        return int(args.func(args))
    except SvcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
