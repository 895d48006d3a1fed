"""Resume: a killed run continues at the right step; damaged checkpoints; pruning."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from svc_dsp.errors import TrainingError
from tests.training.train_helpers import write_config

pytestmark = pytest.mark.usefixtures("catalog_env")
ROOT = Path(__file__).resolve().parents[2]


def _fit_cmd(run: Path, cfg: Path) -> list[str]:
    return [sys.executable, "-m", "training.fit_main", str(run), str(cfg), "--threads", "1"]


def test_killed_run_resumes_at_the_right_step(tmp_path: Path, prepared: Path) -> None:
    from training.checkpoints import latest_checkpoint, list_checkpoints

    cfg = write_config(tmp_path / "c.json", prepared, max_steps=20, eval_interval=4, log_interval=4, keep_ckpts=0)
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_fit_cmd(run, cfg), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600  # a hang guard, not a speed check (CI machines are loaded)
    try:
        while not (run / "checkpoints" / "step_000004").is_dir():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 600 s: the run hangs"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = list_checkpoints(run)[-1][0]
    assert 4 <= killed_at < 20, "the run should be killed before finishing"
    out = subprocess.run(_fit_cmd(run, cfg), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    log = (run / "train.log").read_text(encoding="utf-8")
    assert log.count("new run") == 1
    resumed = int(log.split("resumed from checkpoint step ")[1].split()[0])
    assert resumed >= killed_at >= 4
    assert f"step {resumed + 4 - resumed % 4} " in log  # the next log line continues the count
    assert latest_checkpoint(run).step == 20
    # the resumed run draws the same crops and restores Adam: it ends where an uninterrupted run ends
    straight = subprocess.run(_fit_cmd(tmp_path / "straight", cfg), cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
    assert straight.returncode == 0, straight.stderr
    a, b = latest_checkpoint(run).model, latest_checkpoint(tmp_path / "straight").model
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5, err_msg=k)


def _train(tmp_path: Path, prepared: Path, steps: int, **kw: object) -> Path:
    from training.fit import fit

    cfg = write_config(tmp_path / "c.json", prepared, max_steps=steps, eval_interval=2, **kw)
    fit(tmp_path / "run", cfg, echo=False)
    return cfg


def test_truncated_newest_checkpoint_falls_back_with_a_warning(tmp_path: Path, prepared: Path) -> None:
    from training.checkpoints import list_checkpoints
    from training.fit import fit

    _train(tmp_path, prepared, 4, keep_ckpts=3)
    newest = tmp_path / "run" / "checkpoints" / "step_000004" / "model.safetensors"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])  # a crash while copying, a full disk, ...
    cfg = write_config(tmp_path / "c2.json", prepared, max_steps=5, eval_interval=2, keep_ckpts=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fit(tmp_path / "run", cfg, echo=False)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("skipping damaged checkpoint 'step_000004'") and "sha256" in m for m in messages)
    assert any("previous good checkpoint 'step_000002'" in m for m in messages)
    assert res.resumed_from == 2 and res.step == 5
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert "previous good checkpoint 'step_000002'" in log
    assert (tmp_path / "run" / "checkpoints" / "step_000004.damaged").is_dir()
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [2, 4, 5]


def test_no_loadable_checkpoint_refuses_to_restart(tmp_path: Path, prepared: Path) -> None:
    from training.fit import fit

    cfg = _train(tmp_path, prepared, 2, keep_ckpts=1)
    (tmp_path / "run" / "checkpoints" / "step_000002" / "state.json").write_text("{", encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(TrainingError, match="Refusing to restart from step 0"):
            fit(tmp_path / "run", cfg, echo=False)


def test_pruning_keeps_the_newest(tmp_path: Path, prepared: Path) -> None:
    from training.checkpoints import list_checkpoints, prune_checkpoints

    _train(tmp_path, prepared, 6, keep_ckpts=2)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4, 6]
    newest = list_checkpoints(tmp_path / "run")[-1][1]
    prune_checkpoints(tmp_path / "run", 1, newest)
    assert [p for _, p in list_checkpoints(tmp_path / "run")] == [newest]
    assert prune_checkpoints(tmp_path / "run", 0, newest) == []


def test_architecture_change_is_refused_on_resume(tmp_path: Path, prepared: Path) -> None:
    from training.fit import fit

    _train(tmp_path, prepared, 2)
    cfg = write_config(tmp_path / "c3.json", prepared, max_steps=4, architecture={"channels": 8, "dilations": [1]})
    with pytest.raises(TrainingError, match="architecture or speakers changed"):
        fit(tmp_path / "run", cfg, echo=False)
