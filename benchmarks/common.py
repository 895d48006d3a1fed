"""What every benchmark needs: the model under test and a description of the machine."""
from __future__ import annotations

import os
import platform
from typing import Any


def benchmark_model(ref: str | None) -> tuple[Any, str]:
    """The named model, else the bundled demo voice, else a random-weight model of the
    same architecture (speed does not depend on the weights)."""
    from svc_dsp.errors import SvcError
    from svc_dsp.models.catalog import load_model
    from svc_dsp.models.hpn import build_random

    if ref:
        return load_model(ref), ref
    try:
        return load_model("demo"), "demo"
    except SvcError:
        return build_random(), "random-weight hpn (demo voice not installed; same architecture)"


def machine_line() -> str:
    import torch

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, load average {load:.2f} "
            f"at start; torch {torch.__version__}")
