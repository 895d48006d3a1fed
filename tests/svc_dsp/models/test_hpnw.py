"""'hpnw' voices: Whisper units on the model grid, the hpn decoder, windowed streaming, folders."""
from __future__ import annotations

import json

import numpy as np
import pytest

from svc_dsp.engine.converter import Converter
from svc_dsp.engine.streaming import StreamingConverter
from svc_dsp.errors import SvcError
from svc_dsp.features.loudness import frame_loudness_db
from svc_dsp.models.catalog import load_model
from svc_dsp.models.encoders.whisper import WhisperEncoder
from svc_dsp.models.encoders.whisper_net import expected_shapes
from svc_dsp.models.folder import write_model_folder
from svc_dsp.models.hpnw import (GridFeatures, HpnwModel, build_random, grid_units, loudness_input,
                                 save_model_folder)
from tests.signals import sung_tone

SR, HOP = 24000, 120


def tiny_encoder(d: int = 32, seed: int = 0) -> tuple[dict, dict[str, np.ndarray]]:
    """A random one-block Whisper encoder (fast): its model.json fields and tensors."""
    rng = np.random.default_rng(seed)
    shapes = expected_shapes(d, 1, False, 1500)
    tensors = {k: (0.2 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
    for k in tensors:
        if k.endswith(("ln.weight", "ln.gamma")) or ".attn_ln.weight" in k or ".mlp_ln.weight" in k:
            tensors[k] = 1.0 + tensors[k]
    cfg = {"family": "content-encoder", "kind": "whisper", "name": "tiny-whisper", "size": "test", "dim": d,
           "heads": 2, "n_layers": 1, "output_layer": 1, "final_norm": False, "sample_rate": 16000,
           "frame_seconds": 0.02}
    return cfg, tensors


@pytest.fixture(scope="module")
def encoder() -> WhisperEncoder:
    cfg, t = tiny_encoder()
    return WhisperEncoder(cfg, t)


@pytest.fixture(scope="module")
def model(encoder) -> HpnwModel:
    return build_random(encoder=encoder, speakers=["a", "b"], channels=32, dilations=[1, 2, 4], n_harmonics=32)


def test_units_sit_on_the_model_grid(encoder):
    x = sung_tone(SR, 1.3, f0=200.0)
    n = -(-x.shape[0] // HOP)
    g = grid_units(encoder, x, SR, HOP, n)
    assert g.shape == (n, encoder.dim) and g.dtype == np.float32
    from svc_dsp.models.encoders.registry import mono_at
    from svc_dsp.models.encoders.whisper_net import normalize_log_mel
    import torch

    mel = normalize_log_mel(encoder.frontend(torch.from_numpy(mono_at(x, SR, 16000))[None]), 0.5)
    u = encoder.encode_mel(mel)
    # frame j describes sample (j+1)*hop = 5 ms * (j+1); Whisper frame i sits at 20 ms * i: j = 4i - 1
    for i in (1, 5, 20, u.shape[0] - 2):
        np.testing.assert_allclose(g[4 * i - 1], u[i], atol=1e-6)
    np.testing.assert_allclose(g[4 * 5 + 1], 0.5 * (u[5] + u[6]), atol=1e-5)  # half way between


def test_loudness_input_is_the_frame_loudness(encoder):
    x = sung_tone(SR, 0.5, f0=300.0)
    n = -(-x.shape[0] // HOP)
    np.testing.assert_allclose(loudness_input(x, SR, HOP, n), frame_loudness_db(x, SR, HOP, n) / 20.0, rtol=1e-6)


def test_training_features_equal_the_window_features(model, encoder):
    x = sung_tone(SR, 0.8, f0=220.0)
    units, loud = GridFeatures(encoder, model.mel_ceiling).encode_with_energy(x, SR)
    u2, l2 = model.features(x)
    np.testing.assert_array_equal(units, u2)
    np.testing.assert_array_equal(loud, l2)
    assert GridFeatures(encoder).hop(SR) == model.hop_size


def test_convert_window_shape_and_voicing(model):
    x = sung_tone(SR, 0.7, f0=250.0)
    n = -(-x.shape[0] // HOP)
    f0 = np.full(n, 250.0, np.float32)
    y = model.convert_window(x, f0, model.speaker_weights("b"))
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() > 1e-3
    # uv = 0 everywhere: the harmonic part goes silent, only noise bands remain
    quiet = model.convert_window(x, f0, model.speaker_weights("b"), uv=np.zeros(n, np.float32))
    assert np.sqrt(np.mean(quiet ** 2)) < 0.5 * np.sqrt(np.mean(y ** 2))


def test_streamed_matches_offline_within_the_windowed_bounds(model):
    sr = 48000
    x = sung_tone(sr, 2.0, f0=200.0)
    params = {"loudness_match": 0.0, "gate_db": -120.0, "f0_method": "yin"}
    off = Converter(model, **params).convert(x, sr)
    sc = StreamingConverter(model, sr, 256, **params)
    L = sc.latency_samples
    xx = np.concatenate([x, np.zeros(L, np.float32)])
    y = np.concatenate([sc.process(xx[i:i + 256]) for i in range(0, xx.shape[0], 256)])[L:]
    off = np.asarray(off).reshape(-1)[:y.shape[0]]
    assert y.shape == x.shape and np.isfinite(y).all()
    # compare on 40 ms frames inside the two sung halves (the tone pauses at 0.9-1.1 s, where the
    # offline slicer outputs silence); SOLA may shift a window by up to its search range
    f = sr // 25
    for a, b in ((sr // 4, 17 * sr // 20), (23 * sr // 20, 7 * sr // 4)):
        def frames_db(s: np.ndarray) -> np.ndarray:
            seg = s[a:b][: (b - a) // f * f].reshape(-1, f)
            return 10 * np.log10(np.mean(seg.astype(np.float64) ** 2, axis=1) + 1e-12)

        d = np.abs(frames_db(y) - frames_db(off))
        assert np.median(d) < 1.5 and d.max() < 6.0, d
        spec = lambda s: np.abs(np.fft.rfft(s[a:b] * np.hanning(b - a)))  # noqa: E731
        sa, sb = spec(y), spec(off)
        assert float(sa @ sb / (np.linalg.norm(sa) * np.linalg.norm(sb))) > 0.9


def test_engine_takes_the_voice_window_geometry(model):
    base = StreamingConverter(model, 48000, 256)
    assert base.stage.step == round(model.window_settings()["step"] * SR / HOP) * HOP
    model.config["window"] = {"step": 0.2}
    try:
        longer = StreamingConverter(model, 48000, 256)
        assert longer.stage.step == 0.2 * SR
        assert longer.latency_samples > base.latency_samples
        lat = {StreamingConverter(model, 48000, b, **p).latency_samples
               for b in (64, 1024) for p in ({}, {"transpose": 4.0}, {"mix": 0.3})}
        assert lat == {longer.latency_samples}
    finally:
        model.config["window"] = {}


@pytest.fixture
def catalog(tmp_path, monkeypatch):
    cfg, t = tiny_encoder(seed=1)
    root = tmp_path / "root"
    write_model_folder(root / "encoders" / "tiny-whisper", cfg, {"encoder.safetensors": t})
    monkeypatch.setenv("SVC_HOST_PATH", str(root))
    return root


def test_folder_round_trip(catalog, tmp_path):
    from svc_dsp.models.catalog import find_in_catalog
    from svc_dsp.models.encoders.registry import load_content_encoder

    enc = load_content_encoder(find_in_catalog("encoders", "tiny-whisper"))
    m = build_random(encoder=enc, seed=3, channels=16, dilations=[1, 2], n_harmonics=16)
    folder = save_model_folder(m, tmp_path / "voice")
    cfg = json.loads((folder / "model.json").read_text())
    assert cfg["family"] == "hpnw" and cfg["content_encoder"]["name"] == "tiny-whisper"
    assert len(cfg["content_encoder"]["sha256"]) == 64 and not (folder / "encoder").exists()
    back = load_model(folder)
    assert isinstance(back, HpnwModel) and back.regime == "windowed"
    x = sung_tone(SR, 0.5, f0=300.0)
    f0 = np.full(-(-x.shape[0] // HOP), 300.0, np.float32)
    np.testing.assert_array_equal(back.convert_window(x, f0, back.speaker_weights()),
                                  m.convert_window(x, f0, m.speaker_weights()))
    # a wrong tensor shape is refused in one line naming the tensor
    from safetensors.numpy import load_file, save_file

    t = load_file(str(folder / "model.safetensors"))
    t["spk_table"] = np.zeros((5, 3), np.float32)
    bad = tmp_path / "bad"
    write_model_folder(bad, {k: v for k, v in cfg.items() if k not in ("format", "format_version")},
                       {"model.safetensors": t})
    with pytest.raises(SvcError, match="spk_table"):
        load_model(bad)
    assert save_file  # imported for symmetry with load_file


def test_index_ratio_moves_units_toward_the_bank(model):
    from svc_dsp.models.retrieval import FeatureIndex

    x = sung_tone(SR, 0.6, f0=260.0)
    f0 = np.full(-(-x.shape[0] // HOP), 260.0, np.float32)
    spk = model.speaker_weights("a")
    plain = model.convert_window(x, f0, spk)
    rng = np.random.default_rng(0)
    model.feature_index = FeatureIndex({"a": rng.standard_normal((64, model.encoder.dim)).astype(np.float32)})
    try:
        assert np.array_equal(model.convert_window(x, f0, spk, index_ratio=0.0), plain)
        assert not np.allclose(model.convert_window(x, f0, spk, index_ratio=1.0), plain, atol=1e-4)
    finally:
        model.feature_index = None


def test_keep_decodes_only_the_kept_frames_at_the_same_level(model):
    x = sung_tone(SR, 1.3, f0=230.0)
    x[: x.shape[0] // 2] = sung_tone(SR, 1.3, f0=230.0)[x.shape[0] // 2:][: x.shape[0] // 2]  # no pause inside
    n = -(-x.shape[0] // HOP)
    f0 = np.full(n, 230.0, np.float32)
    spk = model.speaker_weights("a")
    whole = model.convert_window(x, f0, spk)
    s0, s1 = 24000, 24000 + 4800
    part = model.convert_window(x, f0, spk, keep=(s0, s1))
    assert part.shape == whole.shape and not part[: s0 - 60 * HOP].any()  # nothing decoded far before s0
    f = 480
    lv = lambda s: 10 * np.log10(np.mean(s[s0:s1].reshape(-1, f).astype(np.float64) ** 2, 1) + 1e-12)  # noqa: E731
    assert np.max(np.abs(lv(part) - lv(whole))) < 1.0
