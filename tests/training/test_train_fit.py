"""fit -> export -> load_model -> synthesize end to end; fine-tuning; NaN handling; config errors."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from svc_dsp.errors import TrainingError
from tests.training.train_helpers import ENCODER_NAME, make_dataset, write_config

pytestmark = pytest.mark.usefixtures("catalog_env")


def test_end_to_end_prepare_features_fit_export_load(tmp_path: Path, catalog_root: Path) -> None:
    """The whole pipeline on freshly generated data (2 speakers, a non-ASCII name, a corrupt file)."""
    from svc_dsp.models.catalog import load_model
    from training.export import export
    from training.features import extract_features
    from training.fit import fit
    from training.prepare import prepare

    raw = make_dataset(tmp_path, files_per_speaker=3, seed=5)
    prep_rep = prepare(raw, tmp_path / "prep", min_s=1.0, max_s=4.0, val_per_speaker=1)
    assert len(prep_rep.skipped) == 1 and prep_rep.n_files == 6
    feat_rep = extract_features(tmp_path / "prep", encoder_folder_or_name=ENCODER_NAME, f0_method="yin")
    assert feat_rep.computed == prep_rep.n_pieces and not feat_rep.failed
    cfg = write_config(tmp_path / "train.json", tmp_path / "prep", max_steps=8, name="ignored-by-export")
    res = fit(tmp_path / "run", cfg, echo=False)
    assert res.step == 8 and np.isfinite(res.losses["train_loss"]) and np.isfinite(res.losses["val_loss"])
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert "new run" in log and "step 8" in log and "steps/s" in log
    rep = export(tmp_path / "run", tmp_path / "models" / "tiny-voice")
    assert rep.max_abs_diff <= 1e-5 and rep.encoder == ENCODER_NAME and rep.step == 8
    model = load_model(tmp_path / "models" / "tiny-voice")
    cfg_json = json.loads((tmp_path / "models" / "tiny-voice" / "model.json").read_text(encoding="utf-8"))
    assert cfg_json["name"] == "tiny-voice" and cfg_json["speakers"] == ["alto", "sängerin"]
    assert cfg_json["content_encoder"]["name"] == ENCODER_NAME and len(cfg_json["content_encoder"]["sha256"]) == 64
    assert cfg_json["training"]["steps"] == 8 and cfg_json["hop_size"] == 120
    assert not any("optimizer" in p.name for p in (tmp_path / "models" / "tiny-voice").iterdir())
    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(12000) / 24000)).astype(np.float32)
    y = model.synthesize(x, np.full(100, 220.0, np.float32), model.speaker_weights("sängerin"))
    assert y.shape == x.shape and np.isfinite(y).all() and np.abs(y).max() > 0
    # bundled variant loads without the catalog
    rep2 = export(tmp_path / "run", tmp_path / "bundled", bundle_encoder=True)
    assert rep2.encoder.startswith("bundled")
    assert (tmp_path / "bundled" / "encoder" / "encoder.safetensors").is_file()
    load_model(tmp_path / "bundled")
    with pytest.raises(TrainingError, match="already exists"):
        export(tmp_path / "run", tmp_path / "bundled")


def test_fine_tune_from_base_model_maps_speakers(tmp_path: Path, prepared: Path) -> None:
    import shutil

    from svc_dsp.models.catalog import load_model
    from training.export import export
    from training.fit import fit

    fit(tmp_path / "base_run", write_config(tmp_path / "a.json", prepared, max_steps=3), echo=False)
    export(tmp_path / "base_run", tmp_path / "base")
    base = load_model(tmp_path / "base")
    # a new dataset whose speakers are 'sängerin' (known) and 'tenor' (new)
    prep2 = tmp_path / "prep2"
    shutil.copytree(prepared, prep2)
    (prep2 / "speakers.json").write_text(json.dumps({"sängerin": 0, "tenor": 1}), encoding="utf-8")
    for split in ("train", "val"):
        p = prep2 / "filelists" / f"{split}.txt"
        lines = [ln.replace("audio/alto/", "audio/tenor/") for ln in p.read_text(encoding="utf-8").splitlines()]
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for sub in ("audio", "features"):
        (prep2 / sub / "alto").rename(prep2 / sub / "tenor")
    cfg = write_config(tmp_path / "b.json", prep2, max_steps=1, base_model=str(tmp_path / "base"),
                       learning_rate=1e-9)
    fit(tmp_path / "ft_run", cfg, echo=False)
    from training.checkpoints import latest_checkpoint

    ck = latest_checkpoint(tmp_path / "ft_run")
    table = ck.model["spk_table"]
    base_table = base.decoder_tensors()["spk_table"]
    np.testing.assert_allclose(table[0], base_table[1], atol=1e-5)  # 'sängerin' kept its embedding
    np.testing.assert_allclose(table[1], base_table.mean(axis=0), atol=1e-5)  # 'tenor' starts at the mean
    assert "new speaker 'tenor'" in (tmp_path / "ft_run" / "train.log").read_text(encoding="utf-8")


def test_non_finite_steps_are_skipped_then_rolled_back(tmp_path: Path, prepared: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import training.fit as fitmod

    calls = {"n": 0}
    real = fitmod._compute_loss

    def flaky(loss_fn, wave, target):  # calls 4..9 (6 in a row) are NaN
        calls["n"] += 1
        loss, parts = real(loss_fn, wave, target)
        if 4 <= calls["n"] <= 9:
            loss = loss * torch.tensor(float("nan"))
        return loss, parts

    monkeypatch.setattr(fitmod, "_compute_loss", flaky)
    cfg = write_config(tmp_path / "c.json", prepared, max_steps=6, eval_interval=3, nan_rollback_after=5)
    res = fitmod.fit(tmp_path / "run", cfg, echo=False)
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert res.step == 6
    assert "step 3: non-finite loss or gradient; step skipped (1 in a row)" in log
    assert "rolled back to checkpoint step_000003 (step 3) and halved the learning rate" in log
    from training.checkpoints import latest_checkpoint

    ck = latest_checkpoint(tmp_path / "run")
    assert ck.step == 6 and ck.state["lr_scale"] == 0.5
    assert all(np.isfinite(v).all() for v in ck.model.values())


@pytest.mark.parametrize("patch,match", [
    ({"bogus": 1}, "unknown key"),
    ({"max_steps": None}, "give 'epochs' or 'max_steps'"),
    ({"batch_size": 0}, "batch_size = 0"),
    ({"architecture": {"chanels": 3}}, "architecture key"),
    ({"keep_ckpts": -1}, "keep_ckpts"),
])
def test_config_errors_name_the_key(tmp_path: Path, patch: dict, match: str) -> None:
    from training.config import load_config

    cfg = {"prep_dir": "p", "max_steps": 3, **patch}
    (tmp_path / "c.json").write_text(json.dumps({k: v for k, v in cfg.items() if v is not None}), encoding="utf-8")
    with pytest.raises(TrainingError, match=match):
        load_config(tmp_path / "c.json")


def test_toml_config_and_epochs(tmp_path: Path, prepared: Path) -> None:
    from training.config import load_config
    from training.fit import fit

    (tmp_path / "c.toml").write_text(
        f'prep_dir = "{prepared.as_posix()}"\nepochs = 1\nbatch_size = 2\nsegment_seconds = 0.3\n'
        f'fft_sizes = [256, 128]\n[architecture]\nchannels = 16\ndilations = [1, 2]\n', encoding="utf-8")
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.epochs == 1 and cfg.log_interval == 200 and cfg.eval_interval == 800 and cfg.keep_ckpts == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = fit(tmp_path / "run", tmp_path / "c.toml", echo=False)
    assert res.step >= 1 and (tmp_path / "run" / "checkpoints" / f"step_{res.step:06d}").is_dir()


def test_persistent_non_finite_loss_stops_with_a_message(tmp_path: Path, prepared: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import training.fit as fitmod

    real = fitmod._compute_loss
    monkeypatch.setattr(fitmod, "_compute_loss",
                        lambda fn, w, t: (lambda lp: (lp[0] * torch.tensor(float("inf")), lp[1]))(real(fn, w, t)))
    cfg = write_config(tmp_path / "c.json", prepared, max_steps=4, nan_rollback_after=2)
    with pytest.raises(TrainingError, match="after 3 rollbacks"):
        fitmod.fit(tmp_path / "run", cfg, echo=False)


def test_time_limit_stops_with_a_checkpoint(tmp_path: Path, prepared: Path) -> None:
    from training.fit import fit

    cfg = write_config(tmp_path / "c.json", prepared, max_steps=10_000, eval_interval=1000, cpu_limit_minutes=0.02)
    res = fit(tmp_path / "run", cfg, echo=False)
    assert 1 <= res.step < 10_000 and Path(res.checkpoint).is_dir()
    assert "time limit reached" in (tmp_path / "run" / "train.log").read_text(encoding="utf-8")


def test_all_in_mem_trains_on_the_same_crops(tmp_path: Path, prepared: Path) -> None:
    from training.checkpoints import latest_checkpoint
    from training.fit import fit

    for mem in (False, True):
        fit(tmp_path / f"run{mem}", write_config(tmp_path / f"c{mem}.json", prepared, max_steps=2, all_in_mem=mem),
            echo=False)
    a, b = latest_checkpoint(tmp_path / "runFalse").model, latest_checkpoint(tmp_path / "runTrue").model
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
