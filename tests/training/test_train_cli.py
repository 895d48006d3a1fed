"""The train subcommands: registration, flags, no torch import for --help, errors as messages."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_add_train_subcommands_registers_four_stages() -> None:
    from training.cli import add_train_subcommands

    ap = argparse.ArgumentParser()
    add_train_subcommands(ap.add_subparsers(dest="stage"))
    a = ap.parse_args(["prepare", "raw", "out", "--skip-loudnorm", "--jobs", "2", "--sample-rate", "44100"])
    assert a.skip_loudnorm and a.jobs == 2 and a.sample_rate == 44100 and callable(a.func)
    a = ap.parse_args(["features", "prep", "--encoder", "svc-phone-v1", "--f0-method", "yin"])
    assert a.encoder == "svc-phone-v1" and a.f0_method == "yin"
    a = ap.parse_args(["fit", "run", "-c", "cfg.toml", "--nproc-per-node", "2"])
    assert a.config == Path("cfg.toml") and a.nproc_per_node == 2
    a = ap.parse_args(["export", "run", "out", "--bundle-encoder", "--name", "x"])
    assert a.bundle_encoder and a.name == "x"


def test_help_does_not_import_torch_and_errors_are_messages(tmp_path: Path) -> None:
    code = ("import sys, argparse; from training.cli import add_train_subcommands; "
            "ap = argparse.ArgumentParser(); add_train_subcommands(ap.add_subparsers()); "
            "print('torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    out = subprocess.run([sys.executable, "-m", "training.cli", "prepare", str(tmp_path / "nope"), str(tmp_path / "o")],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "does not exist" in out.stderr and "Traceback" not in out.stderr
