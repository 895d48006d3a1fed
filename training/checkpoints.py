"""Training checkpoints: one directory per step, never pickled, written atomically.

``run_dir/checkpoints/step_000800/``::

    model.safetensors      decoder weights (the frozen encoder is not stored)
    optimizer.safetensors  optimizer state tensors ("state.<index>.<key>")
    rng.safetensors        torch CPU generator state
    state.json             step, epoch, losses, model config, optimizer param groups, numpy RNG,
                           and the sha256 of every file above (written last)

A checkpoint is assembled under ``.step_000800.partial-*`` and renamed when complete, so a
crash leaves either the whole directory or an ignorable partial one. Loading checks every
listed file's sha256; a damaged checkpoint is renamed to ``step_000800.damaged`` and the
previous one is used, with a warning. Pruning keeps the newest ``keep`` checkpoints and
never deletes the newest good one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.fileops import replace_dir
from svc_dsp.errors import TrainingError
from training.features import sha256_of

CHECKPOINT_FORMAT = "svc-host-checkpoint"
CHECKPOINT_VERSION = 1
_NAME = re.compile(r"^step_(\d{6,})$")


@dataclass
class Checkpoint:
    """A loaded checkpoint: numpy tensors plus the state.json contents."""

    path: Path
    step: int
    model: dict[str, np.ndarray]
    optimizer: dict[str, np.ndarray]
    rng: dict[str, np.ndarray]
    state: dict[str, Any]


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def step_name(step: int) -> str:
    return f"step_{step:06d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every directory named like a checkpoint, oldest first (not verified)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(run_dir: Path, step: int, model: dict[str, np.ndarray], optimizer: dict[str, np.ndarray],
                    rng: dict[str, np.ndarray], state: dict[str, Any]) -> Path:
    """Write ``checkpoints/step_<step>/`` atomically; an existing one for the same step is replaced."""
    from safetensors.numpy import save_file

    d = checkpoint_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    final = d / step_name(step)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=d))
    try:
        files: dict[str, str] = {}
        for fname, tensors in (("model.safetensors", model), ("optimizer.safetensors", optimizer),
                               ("rng.safetensors", rng)):
            arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
            save_file(arrays, str(tmp / fname))
            _fsync(tmp / fname)
            files[fname] = sha256_of(tmp / fname)
        full = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state, "step": int(step),
                "files": files}
        (tmp / "state.json").write_text(json.dumps(full, indent=1, ensure_ascii=False), encoding="utf-8")
        _fsync(tmp / "state.json")
        replace_dir(tmp, final)
        _fsync_dir(d)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync(path)
    except OSError:  # not every filesystem lets a directory be fsynced
        pass


def load_checkpoint(path: Path) -> Checkpoint:
    """Load and verify one checkpoint directory; raises TrainingError saying what is wrong."""
    from safetensors.numpy import load_file

    path = Path(path)
    sp = path / "state.json"
    try:
        state = json.loads(sp.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TrainingError(f"checkpoint '{path}' has no state.json (it was not completely written)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TrainingError(f"checkpoint '{path}': state.json is unreadable ({e})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"checkpoint '{path}': state.json is not an svc-host checkpoint")
    if int(state.get("version", 0)) > CHECKPOINT_VERSION:
        raise TrainingError(f"checkpoint '{path}' has version {state.get('version')}, newer than this svc-host "
                            f"({CHECKPOINT_VERSION}); upgrade svc-host")
    tensors: dict[str, dict[str, np.ndarray]] = {}
    for fname, digest in state.get("files", {}).items():
        fp = path / fname
        if not fp.is_file():
            raise TrainingError(f"checkpoint '{path}': '{fname}' is missing")
        got = sha256_of(fp)
        if got != digest:
            raise TrainingError(f"checkpoint '{path}': '{fname}' has sha256 {got[:12]}..., state.json says "
                                f"{digest[:12]}... (truncated or changed after writing)")
        try:
            tensors[fname] = load_file(str(fp))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own types
            raise TrainingError(f"checkpoint '{path}': '{fname}' is not readable safetensors ({e})") from None
    for need in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        if need not in tensors:
            raise TrainingError(f"checkpoint '{path}': state.json does not list '{need}'")
    return Checkpoint(path, int(state["step"]), tensors["model.safetensors"], tensors["optimizer.safetensors"],
                      tensors["rng.safetensors"], state)


def latest_checkpoint(run_dir: Path, *, quarantine: bool = True) -> Checkpoint | None:
    """The newest checkpoint that loads, or None when the run has no checkpoints at all.

    A damaged newer checkpoint is skipped with a warning (and renamed ``*.damaged`` when
    ``quarantine``). If checkpoints exist but none loads, raises TrainingError: training must
    never silently restart from step 0.
    """
    found = list_checkpoints(run_dir)
    problems: list[str] = []
    for step, path in reversed(found):
        try:
            ck = load_checkpoint(path)
        except TrainingError as e:
            problems.append(str(e))
            msg = f"skipping damaged checkpoint '{path.name}': {e}"
            if quarantine:
                target = path.with_name(path.name + ".damaged")
                shutil.rmtree(target, ignore_errors=True)
                path.rename(target)
                msg += f" (moved aside to '{target.name}')"
            warnings.warn(msg, stacklevel=2)
            continue
        if problems:
            warnings.warn(f"resuming from the previous good checkpoint '{path.name}' (step {step})", stacklevel=2)
        return ck
    if found:
        raise TrainingError(
            f"run '{run_dir}' has {len(found)} checkpoint(s) but none could be loaded:\n  " + "\n  ".join(problems)
            + "\nRefusing to restart from step 0. Restore a checkpoint, or start a new run in another folder.")
    return None


def prune_checkpoints(run_dir: Path, keep: int, newest_good: Path) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints (0 = keep all); ``newest_good`` always stays."""
    if keep <= 0:
        return []
    found = list_checkpoints(run_dir)
    doomed = [p for _, p in found[:-keep] if p.resolve() != Path(newest_good).resolve()]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    for p in checkpoint_dir(run_dir).glob(".step_*.partial-*"):  # leftovers of a crash
        shutil.rmtree(p, ignore_errors=True)
    return doomed


# -- optimizer state <-> flat tensors ------------------------------------------------------

def optimizer_to_flat(opt_state: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    """torch optimizer.state_dict() -> ({"state.<i>.<key>": array}, JSON-able param_groups)."""
    flat: dict[str, np.ndarray] = {}
    for idx, st in opt_state["state"].items():
        for key, val in st.items():
            arr = val.detach().cpu().numpy() if hasattr(val, "detach") else np.asarray(val)
            flat[f"state.{idx}.{key}"] = np.array(arr)
    groups = [{k: v for k, v in g.items()} for g in opt_state["param_groups"]]
    return flat, groups


def optimizer_from_flat(flat: dict[str, np.ndarray], groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Inverse of :func:`optimizer_to_flat` (tensors as torch tensors)."""
    import torch

    state: dict[int, dict[str, Any]] = {}
    for name, arr in flat.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = torch.from_numpy(np.array(arr))
    fixed = []
    for g in groups:
        g = dict(g)
        if "betas" in g and isinstance(g["betas"], list):
            g["betas"] = tuple(g["betas"])
        fixed.append(g)
    return {"state": state, "param_groups": fixed}
