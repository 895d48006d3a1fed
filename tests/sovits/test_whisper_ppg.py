"""so-vits-svc voices on Whisper features (speech_encoder 'whisper-ppg' = Whisper medium, 1024-d)."""
from __future__ import annotations

import os

import numpy as np
import pytest

from svc_dsp.errors import CatalogError, ModelFormatError
from tests.host_bridge.ct2_whisper import random_whisper, speechlike, write_model_bin
from tests.sovits.builders import sovits_config, write_voice


@pytest.fixture()
def whisper_voice(tmp_path, monkeypatch):
    from host_bridge.importers.sovits import import_sovits

    monkeypatch.setenv("SVC_HOST_PATH", str(tmp_path / "catalog"))
    monkeypatch.setenv("SVC_HOST_HOME", str(tmp_path / "home"))
    pth, cj = write_voice(tmp_path / "src", "w", sovits_config(encoder="whisper-ppg", ssl_dim=1024))
    folder, _ = import_sovits(pth, cj, tmp_path / "voice")
    return folder, tmp_path


def test_missing_whisper_encoder_names_the_size_we_cannot_provide(whisper_voice):
    from svc_dsp.models.catalog import load_model

    folder, _ = whisper_voice
    with pytest.raises(CatalogError) as e:
        load_model(folder)
    msg = str(e.value)
    assert "\n" not in msg and "Whisper medium" in msg and "--layout whisper-ppg" in msg
    assert "whisper-base-l4" in msg  # what we do ship


def test_whisper_ppg_layout_refuses_another_size(tmp_path):
    from host_bridge.importers.encoder import import_encoder

    path = write_model_bin(tmp_path / "model.bin", random_whisper(d=16, layers=1))[0]
    with pytest.raises(ModelFormatError, match="needs Whisper large-v2 .1280-dim"):
        import_encoder(path, tmp_path / "e", layout="whisper-ppg-large")
    assert not (tmp_path / "e").exists()


def test_voice_runs_on_an_imported_medium_width_encoder(whisper_voice):
    """A random one-block Whisper of medium's width stands in for medium (same code path, 1024-d)."""
    from host_bridge.importers.encoder import import_encoder
    from svc_dsp.models.catalog import load_model

    folder, tmp = whisper_voice
    (tmp / "ct2").mkdir()
    path = write_model_bin(tmp / "ct2" / "model.bin", random_whisper(d=1024, heads=16, layers=1))[0]
    enc_dir, _ = import_encoder(path, tmp / "catalog" / "encoders" / "whisper-ppg", layout="whisper-ppg")
    assert os.path.isdir(enc_dir)
    m = load_model(folder)
    assert m.encoder.dim == 1024 and m.encoder.pad_30s and m.encoder.config["name"] == "whisper-ppg"
    sr = m.sample_rate
    x = speechlike(0.6, seed=1, sr=sr)
    t = x.shape[0] // m.hop_size
    out = m.convert_window(x, np.full(t, 220.0, np.float32), m.speaker_weights(None, None))
    assert out.shape == x.shape and np.isfinite(out).all() and np.abs(out).max() > 0
