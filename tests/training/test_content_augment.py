"""Content augmentation: speaker-perturbed copies, their cached units, and crops that use them."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from svc_dsp.errors import TrainingError
from tests.training.train_helpers import ENCODER_NAME, write_config

pytestmark = pytest.mark.usefixtures("catalog_env")

SR, HOP = 24000, 120


def _tone(f0: float, seconds: float = 1.0, formant: float = 900.0) -> np.ndarray:
    """Harmonics of ``f0`` under one formant peak at ``formant`` Hz."""
    t = np.arange(int(seconds * SR)) / SR
    x = sum(np.exp(-((k * f0 - formant) / 300.0) ** 2) * np.sin(2 * np.pi * k * f0 * t)
            for k in range(1, int(0.45 * SR / f0)))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def _peak_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y[SR // 4:] * np.hanning(len(y) - SR // 4)))
    return float(np.fft.rfftfreq(len(y) - SR // 4, 1 / SR)[np.argmax(spec)])


def _f0_frames(f0: float, n_samples: int) -> np.ndarray:
    return np.full(n_samples // HOP, f0, np.float32)


def test_perturbation_moves_pitch_and_formants_and_keeps_length_and_peak() -> None:
    from training.content_perturb import Perturbation, perturb_voice

    x = _tone(200.0)
    f0 = _f0_frames(200.0, len(x))
    same = perturb_voice(x, SR, f0, HOP, Perturbation(1.0, 0.0, 0.0))
    up = perturb_voice(x, SR, f0, HOP, Perturbation(1.0, 12.0, 0.0))
    bright = perturb_voice(x, SR, f0, HOP, Perturbation(1.25, 0.0, 0.0))
    for y in (same, up, bright):
        assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert abs(float(np.abs(y).max()) - float(np.abs(x).max())) < 1e-5
    # the strongest harmonic sits under the formant: 800 Hz (k=4) for the original
    assert abs(_peak_hz(same) - 800.0) < 15.0
    assert abs(_peak_hz(bright) - 1200.0) < 15.0, "formant x1.25 moves the peak to harmonic 6"
    # an octave up: the harmonic nearest the unchanged formant is 800 Hz = 2 x 400 Hz
    spec = np.abs(np.fft.rfft(up[SR // 4:]))
    freqs = np.fft.rfftfreq(len(up) - SR // 4, 1 / SR)
    assert spec[np.abs(freqs - 600.0) < 20].max() < 0.05 * spec.max(), "no energy between the new harmonics"


def test_draws_stay_in_their_ranges_and_follow_the_seed() -> None:
    from training.content_perturb import F0_SEMITONES, TILT_DB_PER_OCTAVE, WARP_RANGE, Perturbation

    a = [Perturbation.draw(np.random.default_rng(5)) for _ in range(2)]
    assert a[0] == a[1]
    rng = np.random.default_rng(0)
    for p in (Perturbation.draw(rng) for _ in range(200)):
        assert WARP_RANGE[0] <= p.warp <= WARP_RANGE[1]
        assert abs(p.semitones) <= F0_SEMITONES and abs(p.tilt_db) <= TILT_DB_PER_OCTAVE


@pytest.fixture
def prep_copy(tmp_path: Path, prepared: Path) -> Path:
    dst = tmp_path / "prep"
    shutil.copytree(prepared, dst)
    return dst


def test_features_store_perturbed_units_and_rerun_is_cached(prep_copy: Path) -> None:
    from training.features import extract_features
    from training.prepare import read_filelist

    rels = read_filelist(prep_copy, "train") + read_filelist(prep_copy, "val")
    before = {r: dict(np.load(prep_copy / "features" / Path(*Path(r).parts[1:]).with_suffix(".npz")))
              for r in rels}
    rep = extract_features(prep_copy, encoder_folder_or_name=ENCODER_NAME, f0_method="yin", content_variants=2)
    assert rep.computed == len(rels) and not rep.failed
    for r in rels:
        z = np.load(prep_copy / "features" / Path(*Path(r).parts[1:]).with_suffix(".npz"))
        pert = z["units_perturbed"]
        assert pert.dtype == np.float16 and pert.shape == (2, *z["units"].shape)
        np.testing.assert_array_equal(z["f0"], before[r]["f0"])  # F0 kept, units re-made
        np.testing.assert_allclose(z["units"], before[r]["units"], atol=1e-6)
        assert not np.allclose(pert[0], z["units"], atol=1e-2), "a perturbed copy reads differently"
        assert not np.array_equal(pert[0], pert[1])
    again = extract_features(prep_copy, encoder_folder_or_name=ENCODER_NAME, f0_method="yin", content_variants=2)
    assert again.computed == 0 and again.up_to_date == len(rels)
    plain = extract_features(prep_copy, encoder_folder_or_name=ENCODER_NAME, f0_method="yin")
    assert plain.computed == len(rels), "asking for no variants re-writes the features without them"
    with pytest.raises(TrainingError, match="allowed: an integer 0..16"):
        extract_features(prep_copy, encoder_folder_or_name=ENCODER_NAME, f0_method="yin", content_variants=-1)


def test_old_sidecars_without_the_key_count_as_no_variants(prep_copy: Path) -> None:
    from training.features import extract_features

    for side in (prep_copy / "features").rglob("*.json"):
        if side.name != "features.json":
            meta = json.loads(side.read_text(encoding="utf-8"))
            meta.pop("content_variants", None)
            side.write_text(json.dumps(meta), encoding="utf-8")
    rep = extract_features(prep_copy, encoder_folder_or_name=ENCODER_NAME, f0_method="yin")
    assert rep.computed == 0 and rep.up_to_date > 0


def test_crops_take_perturbed_units_at_the_configured_share(prep_copy: Path) -> None:
    from training.data import CropSampler, read_speakers
    from training.features import extract_features

    spk = read_speakers(prep_copy)
    with pytest.raises(TrainingError, match="--content-variants 4"):
        CropSampler(prep_copy, "train", spk, HOP, content_augment=0.5)
    extract_features(prep_copy, encoder_folder_or_name=ENCODER_NAME, f0_method="yin", content_variants=2)
    clean = CropSampler(prep_copy, "train", spk, HOP)
    for share, expect in ((0.0, 0), (1.0, 8)):
        aug = CropSampler(prep_copy, "train", spk, HOP, content_augment=share, all_in_mem=share > 0)
        b = aug.batch(np.random.default_rng(3), 8, 20, 4)
        # the same crops, read through a sampler without augmentation, differ only in their units
        ref = clean.batch(np.random.default_rng(3), 8, 20, 4) if share == 0 else None
        if ref is not None:
            np.testing.assert_array_equal(b.units, ref.units)
        n_changed = 0
        for i in range(8):
            units = b.units[i].T
            pool = [np.load(it.feats) for it in aug.items]
            hits = [(z, k) for z in pool for k in range(2)
                    if _contains(z["units_perturbed"][k].astype(np.float32), units)]
            n_changed += bool(hits)
        assert n_changed == expect


def _contains(arr: np.ndarray, window: np.ndarray) -> bool:
    n = window.shape[0]
    return any(np.array_equal(arr[s:s + n], window) for s in range(arr.shape[0] - n + 1))


def test_fit_with_content_augment_trains_and_records_it(prep_copy: Path, tmp_path: Path) -> None:
    from training.features import extract_features
    from training.fit import fit

    extract_features(prep_copy, encoder_folder_or_name=ENCODER_NAME, f0_method="yin", content_variants=1)
    res = fit(tmp_path / "run", write_config(tmp_path / "c.json", prep_copy, max_steps=3, content_augment=0.5),
              echo=False)
    assert res.step == 3 and all(np.isfinite(v) for v in res.losses.values())
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text(encoding="utf-8"))
    assert saved["content_augment"] == 0.5


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "half"])
def test_content_augment_out_of_range_is_refused(tmp_path: Path, value: object) -> None:
    from training.config import load_config

    (tmp_path / "c.json").write_text(json.dumps({"prep_dir": "p", "max_steps": 3, "content_augment": value}),
                                     encoding="utf-8")
    with pytest.raises(TrainingError, match="content_augment = .*allowed: a share in \\[0, 1\\]"):
        load_config(tmp_path / "c.json")
