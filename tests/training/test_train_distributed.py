"""torchrun with 2 CPU processes (gloo) trains a few steps and writes the usual checkpoint."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.training.train_helpers import write_config

pytestmark = pytest.mark.usefixtures("catalog_env")
ROOT = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes(tmp_path: Path, prepared: Path) -> None:
    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not on PATH (it ships with torch); distributed training not tested")
    from training.checkpoints import latest_checkpoint

    cfg = write_config(tmp_path / "c.json", prepared, max_steps=4, eval_interval=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "training.fit_main",
                          str(tmp_path / "run"), str(cfg), "--threads", "1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    ck = latest_checkpoint(tmp_path / "run")
    assert ck.step == 4 and ck.state["world_size"] == 2
    assert set(ck.model) and (tmp_path / "run" / "checkpoints" / "step_000002").is_dir()
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert "world 2" in log and log.count("new run") == 1  # rank 0 logs alone


def test_cli_fit_launches_torchrun(tmp_path: Path, prepared: Path) -> None:
    """`svc-host train fit --nproc-per-node 2` goes through torch.distributed.run itself."""
    cfg = write_config(tmp_path / "c.json", prepared, max_steps=2, eval_interval=2)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "training.cli", "fit", str(tmp_path / "run"), "--config", str(cfg),
                          "--nproc-per-node", "2", "--threads", "1"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-4000:]
    assert (tmp_path / "run" / "checkpoints" / "step_000002" / "state.json").is_file()
