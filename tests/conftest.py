"""Shared fixtures: small random-weight models written as real model folders, and signals."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def random_model_dir(tmp_path_factory) -> Path:
    """A random 'hpn' model (speakers alto, tenor) with its encoder bundled: loads like a real one."""
    from svc_dsp.models.hpn import build_random, save_model_folder

    d = tmp_path_factory.mktemp("models") / "random-hpn"
    save_model_folder(build_random(seed=3), d)
    return d


@pytest.fixture(scope="session")
def random_model(random_model_dir):
    from svc_dsp.models.catalog import load_model

    return load_model(random_model_dir)
