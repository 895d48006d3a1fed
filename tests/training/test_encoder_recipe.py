"""The content-encoder recipe end to end (tiny mode) and the shipped encoder folders."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.sysdeps import needs

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # plain `pytest` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

torch = pytest.importorskip("torch")

PRESETS = ROOT / "presets"
# the causal phone encoders this recipe makes (presets/encoders also holds converted Whisper weights)
SHIPPED = sorted(f for f in (PRESETS / "encoders").iterdir() if (f / "model.json").is_file()
                 and '"kind": "causal-mel"' in (f / "model.json").read_text(encoding="utf-8"))


def _signal(sr: int, seconds: float = 1.3) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(sr * seconds)) / sr
    x = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def _check_encoder(folder: Path) -> None:
    from svc_dsp.models.encoders.registry import load_content_encoder
    from svc_dsp.models.encoders.causal_mel import CausalMelEncoder
    from svc_dsp.models.folder import load_tensors

    enc = load_content_encoder(folder)
    assert isinstance(enc, CausalMelEncoder)
    assert enc.config["output"] == "softmax" and enc.dim == len(enc.config["phones"])
    tensors = load_tensors(folder / "encoder.safetensors")
    assert {k: tuple(v.shape) for k, v in tensors.items()} == enc.expected_shapes()
    lookahead = (1 + enc.delay_frames) * enc.frame_seconds
    assert lookahead <= 0.020

    for sr in (16000, 44100):
        x = _signal(sr)
        hop = enc.hop(sr)
        units = enc.encode(x, sr)
        assert units.shape == (-(-len(x) // hop), enc.dim)
        assert np.all(np.isfinite(units))
        np.testing.assert_allclose(units.sum(axis=1), 1.0, atol=1e-4)  # phone posteriors

        # Streaming equals offline: the same hops in two calls through the net's state.
        net = enc.net(sr)
        n_hops = len(x) // hop
        xx = torch.from_numpy(x[: n_hops * hop])[None]
        k = n_hops // 3 + 1
        with torch.inference_mode():
            whole, e_whole, _ = net(xx)
            first, e1, state = net(xx[:, : k * hop])
            second, e2, _ = net(xx[:, k * hop:], state)
        torch.testing.assert_close(torch.cat([first, second], dim=-1), whole, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(torch.cat([e1, e2], dim=-1), e_whole, atol=1e-4, rtol=1e-4)

        # Causal: output frames before the change do not see changed future audio.
        y = x.copy()
        y[k * hop:] = 0.5 * _signal(sr)[: len(x) - k * hop][::-1]
        with torch.inference_mode():
            changed, _, _ = net(torch.from_numpy(y[: n_hops * hop])[None])
        torch.testing.assert_close(changed[..., :k], whole[..., :k], atol=1e-5, rtol=1e-4)


@needs("flite")  # the recipe synthesises its corpus with it
def test_tiny_recipe_trains_exports_and_streams(tmp_path: Path) -> None:
    from training.recipes.encoder_svc_phone_v1 import main

    out = tmp_path / "enc"
    assert main(["--tiny", "--out", str(out), "--processes", "1", "--threads", "1"]) == 0
    _check_encoder(out)
    import json
    cfg = json.loads((out / "model.json").read_text())
    assert cfg["family"] == "content-encoder" and cfg["kind"] == "causal-mel"
    assert cfg["training"]["steps"] == 4
    assert "unseen_speaker" in cfg["training"]["frame_accuracy_percent"]


@pytest.mark.parametrize("folder", SHIPPED, ids=[f.name for f in SHIPPED])
def test_shipped_encoder_loads_and_streams(folder: Path) -> None:
    _check_encoder(folder)
    assert sum(f.stat().st_size for f in folder.iterdir()) < 8e6


def test_bundled_models_load_and_fit_the_size_budget() -> None:
    from svc_dsp.models.catalog import load_model

    assert "svc-phone-v1" in [f.name for f in SHIPPED]  # stays for the voices users trained on it
    for model in sorted((PRESETS / "models").iterdir()):
        assert load_model(model).sample_rate > 0
    total = sum(f.stat().st_size for f in PRESETS.rglob("*") if f.is_file())
    # 45 MB: svc-phone-v1 and the demo (6.5 MB) + Whisper base blocks 1-4 (28.6 MB) + the Whisper-unit
    # voice demo-whisper (5.5 MB: decoder 2.4 MB, target index 3.1 MB); docs/decisions.md
    assert total <= 45e6, f"bundled model files: {total / 1e6:.1f} MB"


def test_force_align_recovers_timings_from_clean_posteriors() -> None:
    from training.corpus.synth_speech import PHONE_INDEX, frame_labels
    from training.encoder_train import force_align

    rng = np.random.default_rng(0)
    phones = np.array([PHONE_INDEX[p] for p in ("sil", "hh", "ah", "l", "ow", "sil", "w", "er", "l", "d", "sil")])
    ends = np.cumsum(rng.uniform(0.03, 0.15, len(phones)))
    n = int(ends[-1] * 16000)
    lab = frame_labels(ends, phones, n, 80)
    post = rng.uniform(0.0, 0.6, (len(lab), 40))
    post[np.arange(len(lab)), lab] += 1.0
    post /= post.sum(axis=1, keepdims=True)
    # the transcript lacks the pause inside: alignment must insert the optional silence itself
    no_pause = np.delete(phones, 5)
    got_ends, got_phones, _ = force_align(np.log(post), no_pause, 0.005)
    assert np.mean(frame_labels(got_ends, got_phones, n, 80) == lab) > 0.98
