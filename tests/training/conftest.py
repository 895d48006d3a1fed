"""Shared fixtures for the training tests: a tiny generated dataset and a random encoder.

Everything is synthesised here (harmonic tones with vibrato, breath noise and pauses),
so no test downloads anything. One prepared + feature-extracted set is built per session.
The training tests request ``catalog_env`` (via ``pytestmark``) so other tests here are unaffected.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.train_helpers import ENCODER_NAME, make_dataset, write_random_encoder


@pytest.fixture(scope="session")
def catalog_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalog")
    write_random_encoder(root)
    return root


@pytest.fixture
def catalog_env(catalog_root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Put the test encoder's catalog root first on SVC_HOST_PATH and use a private user folder."""
    monkeypatch.setenv("SVC_HOST_PATH", str(catalog_root))
    monkeypatch.setenv("SVC_HOST_HOME", str(tmp_path / "home"))


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory, catalog_root: Path) -> Path:
    """A prepared, feature-extracted dataset (session-wide; tests must not modify it)."""
    from training.features import extract_features
    from training.prepare import prepare

    root = tmp_path_factory.mktemp("data")
    raw = make_dataset(root)
    prep = root / "prepared"
    prepare(raw, prep, sample_rate=24000, min_s=1.0, max_s=4.0, val_per_speaker=1)
    extract_features(prep, encoder_folder_or_name=catalog_root / "encoders" / ENCODER_NAME, f0_method="yin")
    return prep
