"""Run :mod:`host_bridge.importers.unpickle_worker` in a child process and read its safetensors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import ModelFormatError, PickleRefusedError

WORKER_TIMEOUT_S = 600


class WorkerResult:
    def __init__(self, tensors: dict[str, np.ndarray], meta: Any, skipped: list[str], notes: dict[str, str]) -> None:
        self.tensors, self.meta, self.skipped, self.notes = tensors, meta, skipped, notes


def unpickle_in_subprocess(path: str | os.PathLike, *, select: str | None = None, allow_numpy: bool = False,
                           allow_config_objects: bool = False, what: str = "checkpoint") -> WorkerResult:
    """Restricted-unpickle ``path`` in a separate Python process.

    Raises PickleRefusedError when the file asks for code (nothing ran), ModelFormatError when it is
    not a readable torch checkpoint or asks for more memory than its size justifies (the message
    names the limit; see :class:`host_bridge.importers.unpickle_limits.Limits`).
    """
    from safetensors.numpy import load_file

    # the worker runs with its cwd at the install root: hand it an absolute path resolved here, so a
    # relative name means the caller's file (never a file of the same name beside the package)
    path = Path(path).resolve()
    if not path.is_file():
        raise ModelFormatError(f"{what} '{path}' does not exist")
    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory(prefix="svc-import-") as tmp:
        out = Path(tmp) / "tensors.safetensors"
        cmd = [sys.executable, "-s", "-m", "host_bridge.importers.unpickle_worker", str(path), str(out)]
        if select:
            cmd += ["--select", select]
        if allow_numpy:
            cmd.append("--allow-numpy")
        if allow_config_objects:
            cmd.append("--allow-config-objects")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "SYSTEMROOT", "LANG", "LC_ALL", "HOME", "TMPDIR")}
        env["PYTHONPATH"] = str(root)
        # one BLAS/OpenMP thread: the worker does no maths, and idle thread pools reserve address space
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, env=env, cwd=str(root))
        except subprocess.TimeoutExpired:
            raise ModelFormatError(f"reading {what} '{path}' took more than {WORKER_TIMEOUT_S} s; the file is "
                                   f"unusually large or malformed") from None
        msg = (r.stderr.strip().splitlines() or [""])[-1]
        if r.returncode == 3:
            raise PickleRefusedError(f"{what} '{path}': {msg.removeprefix('REFUSED: ')}")
        if r.returncode == 5:
            raise ModelFormatError(f"{what} '{path}' refused: {msg.removeprefix('LIMIT: ')}")
        if r.returncode != 0:
            raise ModelFormatError(f"{what} '{path}' could not be read as a torch checkpoint: "
                                   f"{msg.removeprefix('UNREADABLE: ') or r.stderr.strip()[-500:]}")
        tensors = load_file(str(out))
        info = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    return WorkerResult(tensors, info["meta"], info["skipped_objects"], info["notes"])
