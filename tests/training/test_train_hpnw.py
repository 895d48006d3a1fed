"""Training an 'hpnw' voice: Whisper features on the model grid -> fit -> export -> load -> stream."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.svc_dsp.models.test_hpnw import tiny_encoder
from tests.training.train_helpers import make_dataset, write_config


@pytest.fixture
def whisper_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from svc_dsp.models.folder import write_model_folder

    cfg, tensors = tiny_encoder(seed=2)
    root = tmp_path / "catalog"
    write_model_folder(root / "encoders" / "tiny-whisper", cfg, {"encoder.safetensors": tensors})
    monkeypatch.setenv("SVC_HOST_PATH", str(root))
    monkeypatch.setenv("SVC_HOST_HOME", str(tmp_path / "home"))
    return root


def test_whisper_features_fit_export_stream(tmp_path: Path, whisper_catalog: Path) -> None:
    from svc_dsp.audio.io import load_audio
    from svc_dsp.engine.streaming import StreamingConverter
    from svc_dsp.models.catalog import load_model
    from svc_dsp.models.hpnw import HpnwModel
    from training.export import export
    from training.features import extract_features, features_path, read_features_meta
    from training.fit import fit
    from training.prepare import prepare

    raw = make_dataset(tmp_path, files_per_speaker=2, seed=4)
    prepare(raw, tmp_path / "prep", min_s=1.0, max_s=4.0, val_per_speaker=1)
    rep = extract_features(tmp_path / "prep", encoder_folder_or_name="tiny-whisper", f0_method="yin")
    assert rep.computed > 0 and not rep.failed
    meta = read_features_meta(tmp_path / "prep")
    assert meta["encoder"]["kind"] == "whisper" and meta["hop"] == 120 and "mel_ceiling" in meta

    cfg = write_config(tmp_path / "train.json", tmp_path / "prep", max_steps=4)
    res = fit(tmp_path / "run", cfg, echo=False)
    assert res.step == 4 and np.isfinite(res.losses["train_loss"])
    xrep = export(tmp_path / "run", tmp_path / "voice")
    assert xrep.encoder == "tiny-whisper" and xrep.max_abs_diff <= 1e-5
    m = load_model(tmp_path / "voice")
    assert isinstance(m, HpnwModel) and m.config["family"] == "hpnw" and m.config["window"]

    # the cached features are what the model computes for the same audio (one function for both)
    rel = (tmp_path / "prep" / "filelists" / "train.txt").read_text(encoding="utf-8").splitlines()[0]
    x, sr, _ = load_audio(tmp_path / "prep" / rel)
    units, loud = m.features(x.mean(axis=0).astype(np.float32))
    with np.load(features_path(tmp_path / "prep", rel)) as z:
        np.testing.assert_allclose(z["units"], units, atol=1e-5)
        np.testing.assert_allclose(z["energy"], loud, atol=1e-6)

    # the exported voice streams with a fixed latency
    sc = StreamingConverter(m, 48000, 256, f0_method="yin")
    L = sc.latency_samples
    sig = np.concatenate([np.repeat(x.mean(axis=0), 2)[:48000], np.zeros(L)]).astype(np.float32)
    y = np.concatenate([sc.process(sig[i:i + 256]) for i in range(0, sig.shape[0], 256)])[L:]
    assert y.shape == (48000,) and np.isfinite(y).all() and sc.xruns == 0


def test_family_follows_the_encoder_kind() -> None:
    from training.features import TRAINABLE_KINDS
    from training.model_setup import family_for

    assert "whisper" in TRAINABLE_KINDS and "hubert" not in TRAINABLE_KINDS
    assert family_for({"kind": "whisper"}) == "hpnw" and family_for({"kind": "causal-mel"}) == "hpn"


def test_whisper_recipe_keeps_benchmark_voices_out_and_the_target_first() -> None:
    from benchmarks.quality import SOURCES, TARGET
    from training.recipes.demo_voice import extra_speaker
    from training.recipes.demo_whisper import EXTRA_VOICES, SPEAKER, train_config

    names = [extra_speaker(v) for v in EXTRA_VOICES]
    assert len(set(names)) == len(names) and all(n > SPEAKER for n in names)  # "demo" stays speaker 0
    used = set(EXTRA_VOICES)
    assert not used & set(SOURCES) and TARGET not in used
    assert not any(v.startswith(("piper:", "kokoro:")) for v in used)
    cfg = train_config(Path("p"), tiny=False, fit_minutes=30.0, wall_minutes=20.0)
    assert cfg["cpu_limit_minutes"] == 30.0 and cfg["time_limit_minutes"] == 20.0 and cfg["all_in_mem"]
    assert "time_limit_minutes" not in train_config(Path("p"), tiny=False, fit_minutes=30.0)
