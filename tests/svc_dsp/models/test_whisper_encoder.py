"""Kind 'whisper': the bundled encoder against a numpy-only forward, any length, long inputs without
seams, bf16, ONNX parity, selectable layer, and refusal of a damaged folder."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from svc_dsp.errors import ManifestError, ParameterError
from tests.host_bridge.ct2_whisper import np_encoder, np_log_mel, random_whisper, speechlike, to_ct2_names

BUNDLED = Path(__file__).resolve().parents[3] / "presets" / "encoders" / "whisper-base-l4"


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1) + 1e-12)


@pytest.fixture(scope="module")
def bundled():
    from svc_dsp.models.encoders.registry import load_content_encoder

    return load_content_encoder(BUNDLED)


@pytest.fixture(scope="module")
def bundled_tensors() -> dict[str, np.ndarray]:
    from svc_dsp.models.folder import load_tensors

    return load_tensors(BUNDLED / "encoder.safetensors")


def test_mel_filters_are_openais():
    """Numbers read from OpenAI's whisper/assets/mel_filters.npz (mel_80): rows 0, 10, 40, 79."""
    from svc_dsp.models.encoders.whisper_net import slaney_mel_filters

    f = slaney_mel_filters()
    rows = [0, 10, 40, 79]
    assert f.shape == (80, 201)
    np.testing.assert_allclose(f.sum(1)[rows], [0.0248625949, 0.0248625930, 0.0266648605, 0.0249253400], rtol=1e-6)
    np.testing.assert_allclose(f.max(1)[rows], [0.0248625949, 0.0199082177, 0.0147355665, 0.0031647119], rtol=1e-6)
    assert f.argmax(1)[rows].tolist() == [1, 10, 43, 192]
    assert abs(float(f.sum()) - 1.9990241527557373) < 1e-6


def test_bundled_encoder_matches_a_numpy_forward(bundled, bundled_tensors):
    from svc_dsp.models.encoders.whisper_net import slaney_mel_filters

    assert bundled.dim == 512 and bundled.output_layer == 4 and bundled.frame_seconds == 0.02
    x = speechlike(1.0, seed=1)
    got = bundled.encode(x, 16000)
    ref = np_encoder(to_ct2_names(bundled_tensors, 8), np_log_mel(x, slaney_mel_filters()), 4, False)
    assert got.shape == ref.shape == (50, 512)  # 50 frames per second
    assert np.abs(got - ref).max() <= 1e-3


@pytest.mark.parametrize("seconds", [0.005, 0.013, 0.33, 1.234])
def test_any_length_without_padding(bundled, seconds):
    from svc_dsp.models.encoders.whisper import n_frames

    x = speechlike(seconds, seed=3)
    u = bundled.encode(x, 16000)
    assert u.shape == (n_frames(x.size), 512) and np.isfinite(u).all()
    if seconds > 1:
        u44 = bundled.encode(speechlike(seconds, seed=3, sr=44100), 44100)  # resampled to 16 kHz
        assert abs(u44.shape[0] - u.shape[0]) <= 1


def test_selectable_layer_and_bf16(bundled_tensors):
    from svc_dsp.models.encoders.whisper import WhisperEncoder
    from svc_dsp.models.encoders.whisper_net import slaney_mel_filters
    from svc_dsp.models.folder import read_config

    cfg = read_config(BUNDLED)
    x = speechlike(0.6, seed=4)
    enc2 = WhisperEncoder(cfg, bundled_tensors, output_layer=2)
    ref = np_encoder(to_ct2_names(bundled_tensors, 8), np_log_mel(x, slaney_mel_filters()), 2, False)
    a = enc2.encode(x, 16000)
    assert np.abs(a - ref).max() <= 1e-3
    enc2.set_dtype("bfloat16")
    b = enc2.encode(x, 16000)
    assert b.dtype == np.float32 and _cos(a, b).mean() > 0.99
    with pytest.raises(ParameterError, match="blocks 1..4"):
        WhisperEncoder(cfg, bundled_tensors, output_layer=5)


def test_window_plan_covers_every_frame_once():
    from svc_dsp.models.encoders.whisper import window_plan

    for total in (10, 1500, 1501, 2000, 4321):
        acc = np.zeros(total)
        for start, w in window_plan(total, 1500, 100, 100):
            assert start >= 0 and start + len(w) <= total
            acc[start:start + len(w)] += w
            if start > 0:  # frames a window keeps are >= margin after its first frame
                assert not w[:100].any()
        np.testing.assert_allclose(acc, 1.0, atol=1e-12)


def test_long_input_windows_have_no_seams(bundled_tensors):
    """A 5 s positional table stands in for the 30 s one (same code path, cheaper): a 14 s input in
    overlapping windows against one pass over the whole input with the full table."""
    from svc_dsp.models.encoders.whisper import WhisperEncoder
    from svc_dsp.models.encoders.whisper_net import normalize_log_mel  # noqa: F401  (front end shared)
    from svc_dsp.models.folder import read_config

    cfg = read_config(BUNDLED)
    one_pass = WhisperEncoder(cfg, bundled_tensors)
    short = {**bundled_tensors, "positional_embedding": bundled_tensors["positional_embedding"][:250]}
    windowed = WhisperEncoder({**cfg, "margin_seconds": 1.0, "crossfade_seconds": 1.0}, short)
    x = speechlike(14.0, seed=5)
    a, b = one_pass.encode(x, 16000), windowed.encode(x, 16000)
    assert a.shape == b.shape == (700, 512)
    mel = one_pass.log_mel(x)[0].numpy()
    active = mel.mean(0)[::2][: len(a)] > mel.max() - 1.75  # frames with sound (the floor is max - 2)
    c = _cos(a, b)
    from svc_dsp.models.encoders.whisper import window_plan

    seam = np.zeros(len(a), bool)
    for start, w in window_plan(len(a), 250, 50, 50):
        seam[start:start + len(w)] |= (w > 0) & (w < 1)
    assert seam.sum() > 100 and active.mean() > 0.5
    assert c[active].mean() > 0.9
    assert c[active & seam].mean() > c[active & ~seam].mean() - 0.03  # the hand-overs are no worse


def test_longer_than_30_s(tmp_path):
    """A small random Whisper with the real 1500-row table: 40 s in, 2000 frames out, made of two
    30 s windows, each kept away from its cut edge and cross-faded (the seams' quality is checked
    with real weights above)."""
    from host_bridge.importers.whisper import import_whisper
    from svc_dsp.models.encoders.registry import load_content_encoder
    from svc_dsp.models.encoders.whisper import WhisperEncoder, window_plan
    from tests.host_bridge.ct2_whisper import write_model_bin

    path = write_model_bin(tmp_path / "model.bin", random_whisper(d=16, layers=1))[0]
    folder, _ = import_whisper([path], tmp_path / "enc")
    enc = load_content_encoder(folder)
    assert isinstance(enc, WhisperEncoder)
    x = speechlike(40.0, seed=6)
    u = enc.encode(x, 16000)
    assert u.shape == (2000, 16) and np.isfinite(u).all()
    mel = enc.log_mel(x)
    floor = float(mel.amax()) - 2.0
    plan = window_plan(2000, 1500, enc.margin, enc.crossfade)
    assert [s for s, _ in plan] == [0, 500]
    (s0, w0), (s1, w1) = plan
    first = enc._run(mel[..., 2 * s0:2 * (s0 + 1500)], floor)
    second = enc._run(mel[..., 2 * s1:2 * (s1 + 1500)], floor)
    np.testing.assert_allclose(u[:s1], first[:s1], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(u[s0 + 1500:], second[s0 + 1500 - s1:], rtol=1e-5, atol=1e-5)
    mix = w0[s1:, None] * first[s1:] + w1[:1500 - s1, None] * second[:1500 - s1]
    np.testing.assert_allclose(u[s1:s0 + 1500], mix, rtol=1e-5, atol=1e-5)
    assert (w0[-enc.margin:] == 0).all() and (w1[:enc.margin] == 0).all()  # no frame from a cut edge


def test_onnx_export_matches_torch(bundled, tmp_path):
    pytest.importorskip("onnxruntime")
    x = speechlike(1.5, seed=7)
    ref = bundled.encode(x, 16000)
    path = bundled.export_onnx(tmp_path / "whisper.onnx")
    try:
        bundled.use_onnx(path)
        got = bundled.encode(x, 16000)
        got_short = bundled.encode(x[:8000], 16000)
    finally:
        bundled.use_onnx(None)
    assert got.shape == ref.shape
    # float32 both ways; units reach a few hundred in Whisper's outlier channels, so relative to the largest
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(got - ref).max() <= 2e-5 * scale
    assert np.abs(got_short - bundled.encode(x[:8000], 16000)).max() <= 2e-5 * scale


def test_damaged_or_truncated_folder_is_refused(tmp_path):
    from svc_dsp.models.encoders.registry import load_content_encoder

    bad = tmp_path / "whisper-base-l4"
    shutil.copytree(BUNDLED, bad)
    w = bad / "encoder.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 3])
    with pytest.raises(ManifestError) as e:
        load_content_encoder(bad)
    assert "\n" not in str(e.value) and "sha256" in str(e.value)
