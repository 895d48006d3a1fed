"""The demo-voice recipe in --tiny mode (needs festival; uses the random test encoder)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("catalog_env")


def test_singing_follows_the_melody() -> None:
    import numpy as np

    from training.recipes.singing import melody

    rng = np.random.default_rng(0)
    voiced = np.ones(2000, dtype=bool)
    voiced[500:600] = False
    f0 = melody(voiced, rng, 57.0, 76.0)
    assert (f0[500:600] == 0).all() and (f0[voiced] > 0).all()
    midi = 69 + 12 * np.log2(f0[voiced] / 440.0)
    assert midi.min() >= 57 - 0.75 and midi.max() <= 76 + 0.75


@pytest.mark.skipif(shutil.which("text2wave") is None, reason="festival (text2wave) is not installed")
def test_demo_recipe_tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from host_bridge.presets import load_preset
    from svc_dsp.models.catalog import load_model
    from tests.training.train_helpers import ENCODER_NAME
    from training.recipes.demo_voice import main

    out = tmp_path / "presets" / "models" / "demo"
    monkeypatch.chdir(tmp_path)  # a relative --work must work (the train config sits inside it)
    rc = main(["--tiny", "--minutes", "0.25", "--jobs", "1", "--threads", "1", "--work", "work",
               "--out", str(out), "--encoder", ENCODER_NAME])
    assert rc == 0
    model = load_model(out)
    assert model.speakers == ["demo"] and model.sample_rate == 24000 and model.hop_size == 120
    preset = load_preset(tmp_path / "presets" / "demo.toml", allow_path=True)
    assert preset.model == "demo"
    assert preset.parameters == {"transpose": 0.0, "f0_method": "yin", "loudness_match": 1.0, "mix": 1.0}
    assert sum(p.stat().st_size for p in out.iterdir()) < 10e6
