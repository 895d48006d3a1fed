"""prepare + features: slicing, levels, file lists, corrupt/non-ASCII files, feature caching."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from tests.training.train_helpers import ENCODER_NAME, make_dataset

from svc_dsp.errors import TrainingError
from training.features import extract_features, features_path
from training.prepare import prepare, read_filelist

pytestmark = pytest.mark.usefixtures("catalog_env")


def test_prepare_layout_levels_and_skips(tmp_path: Path) -> None:
    raw = make_dataset(tmp_path, files_per_speaker=3)
    rep = prepare(raw, tmp_path / "p", min_s=1.0, max_s=2.0, val_per_speaker=1, jobs=2)
    assert rep.speakers == {"alto": 0, "sängerin": 1}
    assert json.loads((tmp_path / "p" / "speakers.json").read_text(encoding="utf-8")) == rep.speakers
    assert [Path(p).name for p, _ in rep.skipped] == ["broken.wav"]
    assert "not readable as audio" in rep.skipped[0][1]
    train, val = read_filelist(tmp_path / "p", "train"), read_filelist(tmp_path / "p", "val")
    assert len(val) == 2 and {Path(v).parts[1] for v in val} == {"alto", "sängerin"}
    assert not set(train) & set(val)
    from svc_dsp.audio.levels import integrated_lufs, true_peak_db

    for rel in train + val:
        x, sr = sf.read(tmp_path / "p" / rel, dtype="float32")
        assert sr == 24000 and x.ndim == 1
        assert 0.5 <= len(x) / sr <= 2.0 + 1e-3, rel  # max_s respected
        assert true_peak_db(x, sr) <= -0.9
    whole = np.concatenate([sf.read(tmp_path / "p" / r, dtype="float32")[0] for r in train if "alto" in r])
    assert abs(integrated_lufs(whole, 24000) - (-18.0)) < 1.5
    assert rep.n_pieces == len(train) + len(val) and "sängerin" in rep.summary()


def test_prepare_validation_counts_per_speaker(tmp_path: Path) -> None:
    raw = make_dataset(tmp_path, files_per_speaker=3)
    prepare(raw, tmp_path / "p", min_s=1.0, max_s=2.0, val_per_speaker={"sängerin": 2})
    val = read_filelist(tmp_path / "p", "val")
    assert len(val) == 2 and {Path(v).parts[1] for v in val} == {"sängerin"}  # alto is not named: none
    assert any(Path(t).parts[1] == "alto" for t in read_filelist(tmp_path / "p", "train"))


def test_prepare_skip_loudnorm_keeps_level(tmp_path: Path) -> None:
    raw = make_dataset(tmp_path)
    prepare(raw, tmp_path / "p", min_s=1.0, max_s=4.0, skip_loudnorm=True, val_per_speaker=0)
    rel = read_filelist(tmp_path / "p", "train")[0]
    x, _ = sf.read(tmp_path / "p" / rel)
    assert 0.15 < np.max(np.abs(x)) < 0.25  # the generator's 0.2 peak, untouched


def test_prepare_refuses_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "raw" / "x").mkdir(parents=True)
    with pytest.raises(TrainingError, match="no speaker folders"):
        prepare(tmp_path / "raw", tmp_path / "p")


def test_features_are_cached_and_redone_when_stale(prepared: Path, tmp_path: Path, catalog_root: Path) -> None:
    import shutil

    prep = tmp_path / "p"
    shutil.copytree(prepared, prep)
    enc = catalog_root / "encoders" / ENCODER_NAME
    rels = read_filelist(prep, "train") + read_filelist(prep, "val")
    with np.load(features_path(prep, rels[0])) as z:
        n = z["units"].shape[0]
        assert z["units"].shape == (n, 16) and z["f0"].shape == z["energy"].shape == z["loudness"].shape == (n,)
        assert n == -(-sf.info(str(prep / rels[0])).frames // 120)
        assert np.median(z["f0"][z["f0"] > 0]) > 100
    rep = extract_features(prep, encoder_folder_or_name=enc, f0_method="yin")
    assert (rep.computed, rep.up_to_date) == (0, len(rels))
    os.utime(prep / rels[0])  # touched, same content: still fresh
    assert extract_features(prep, encoder_folder_or_name=enc, f0_method="yin").computed == 0
    x, sr = sf.read(prep / rels[1], dtype="float32")
    sf.write(prep / rels[1], 0.5 * x, sr, subtype="PCM_16")  # changed content: redone
    assert extract_features(prep, encoder_folder_or_name=ENCODER_NAME, f0_method="yin").computed == 1
    rep = extract_features(prep, encoder_folder_or_name=enc, f0_method="dio", jobs=2)  # method changed
    assert rep.computed == len(rels) and not rep.failed


def test_features_unknown_tracker_and_encoder(prepared: Path) -> None:
    from svc_dsp.errors import SvcError

    with pytest.raises(SvcError, match="registered trackers"):
        extract_features(prepared, encoder_folder_or_name=ENCODER_NAME, f0_method="crepe-xl")
    with pytest.raises(SvcError, match="no encoder named"):
        extract_features(prepared, encoder_folder_or_name="no-such-encoder", f0_method="yin")


def test_new_encoder_keeps_f0(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from svc_dsp.features.f0_yin import YinTracker
    from tests.training.train_helpers import write_random_encoder

    prep = tmp_path / "p"
    shutil.copytree(prepared, prep)
    other = write_random_encoder(tmp_path / "cat2", seed=1)
    rel = read_filelist(prep, "train")[0]
    with np.load(features_path(prep, rel)) as z:
        f0_before, units_before = z["f0"].copy(), z["units"].copy()
    calls = []
    real_track = YinTracker.track
    monkeypatch.setattr(YinTracker, "track", lambda self, *a, **k: calls.append(1) or real_track(self, *a, **k))
    rep = extract_features(prep, encoder_folder_or_name=other, f0_method="yin")
    assert rep.computed > 0 and not calls  # units recomputed, F0 reused
    with np.load(features_path(prep, rel)) as z:
        np.testing.assert_array_equal(z["f0"], f0_before)
        assert not np.array_equal(z["units"], units_before)
