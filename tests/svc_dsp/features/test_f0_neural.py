"""Neural F0 trackers: networks against independent numpy forwards and stored numbers, weights'
sha256, the frame grid, streaming PESTO, and the message when weights are missing."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from svc_dsp.errors import ModelFormatError
from svc_dsp.features import get_f0_tracker
from svc_dsp.features.f0_weights import INSTALL_COMMAND, WeightsMissingError, find_f0_weights, load_f0_weights
from tests.svc_dsp.features.neural_reference import crepe_numpy, fcpe_numpy, pesto_numpy, reference_clip

SHIPPED_TINY = Path(__file__).resolve().parents[3] / "presets" / "f0" / "crepe-tiny" / "weights.safetensors"
TINY_SHA256 = "6602e520501f571ef141a7061d10a2099ffeceb9521b68bb6ca447a731df099e"


def _weights_or_skip(name: str) -> dict[str, np.ndarray]:
    try:
        return load_f0_weights(name)
    except WeightsMissingError:
        pytest.skip(f"weights '{name}' not installed; run `{INSTALL_COMMAND}`")


def _tone(sr: int, f0: float, seconds: float, start: float = 0.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    x = sum(0.25 / h * np.sin(2 * np.pi * h * f0 * t) for h in range(1, 5))
    x[t < start] = 0.0
    return x


def test_shipped_crepe_tiny_sha256_is_pinned():
    got = hashlib.sha256(SHIPPED_TINY.read_bytes()).hexdigest()
    assert got == TINY_SHA256


@pytest.mark.parametrize("name,stored", [
    # argmax bin, its activation, and the activations 3 bins either side, for frames 10 and 30 of
    # reference_clip(), computed by crepe_numpy straight from the wheels' Keras HDF5 files
    ("crepe-tiny", {10: (161, 0.8811906775583661, 0.08906167575925378, 0.050926479090889105),
                    30: (167, 0.8683596966748742, 0.08197820529664551, 0.07526891894606816)}),
    ("crepe-full", {10: (161, 0.9493703359451188, 0.04260095408768225, 0.08050889298364872),
                    30: (167, 0.9422869279537868, 0.10551234410058026, 0.040825095080741364)}),
])
def test_crepe_network_matches_numpy_and_stored_numbers(name, stored):
    import torch

    from svc_dsp.features.f0_crepe import build_crepe_net, crepe_frames

    w = _weights_or_skip(name)
    frames, _ = crepe_frames(reference_clip())
    with torch.inference_mode():
        act = build_crepe_net(w)(torch.from_numpy(frames[[10, 30]])).numpy()
    # the numpy reference (slow: direct convolutions) on frame 10; the stored numbers on both frames
    np.testing.assert_allclose(act[0], crepe_numpy(w, frames[10]), atol=2e-5)
    for row, k in enumerate((10, 30)):
        i, top, lo, hi = stored[k]
        assert int(np.argmax(act[row])) == i
        np.testing.assert_allclose(act[row, [i, i - 3, i + 3]], [top, lo, hi], atol=1e-4)


def test_fcpe_network_matches_numpy():
    import torch

    from svc_dsp.features.f0_fcpe import build_fcpe_net, fcpe_mel

    w = _weights_or_skip("fcpe")
    mel = fcpe_mel(reference_clip(seconds=0.3))
    with torch.inference_mode():
        act = build_fcpe_net(w)(torch.from_numpy(mel[None]))[0].numpy()
    ref = fcpe_numpy(w, mel)
    np.testing.assert_allclose(act, ref, atol=2e-4)
    # the tone glides up from 196 Hz: the decoded pitch of frame 10 (0.1 s) is near 196 * 2 ** 0.05
    cents = w["cent_table"][np.argmax(act[10])]
    assert abs(cents - 1200 * np.log2(196 * 2 ** 0.05 / 10)) < 60


def test_pesto_network_matches_numpy():
    import torch

    from svc_dsp.features.f0_pesto import build_pesto_net

    w = _weights_or_skip("pesto")
    rng = np.random.default_rng(1)
    db = (-40 + 20 * rng.standard_normal((3, 251))).astype(np.float32)
    net = build_pesto_net(w)
    with torch.inference_mode():
        pitch, conf = net(torch.from_numpy(db))
    act, ref_conf = pesto_numpy(w, db)
    np.testing.assert_allclose(conf.numpy(), ref_conf, atol=1e-5)
    centre = act.argmax(-1)
    idx = np.clip(centre[:, None] + np.arange(-2, 3), 0, 383)
    a = np.take_along_axis(act, idx, 1)
    np.testing.assert_allclose(pitch.numpy(), (a * idx / 3).sum(1) / a.sum(1), atol=1e-3)


@pytest.mark.parametrize("name,sr,hop", [
    (name, sr, hop) for name in ["crepe-tiny", "crepe", "fcpe", "pesto", "crepe-tiny-live", "fcpe-live"]
    for sr, hop in [(24000, 120), (44100, 512)]
    if not (name == "crepe" and sr == 44100)])     # CREPE full is crepe-tiny's code with bigger layers: one rate
def test_trackers_on_the_frame_grid(name, sr, hop):
    tracker = get_f0_tracker(name)
    try:
        find_f0_weights(tracker.weights_name)
    except WeightsMissingError:
        pytest.skip(f"weights for '{name}' not installed; run `{INSTALL_COMMAND}`")
    start = 0.3
    x = _tone(sr, 220.0, 0.8, start=start)
    n = -(-x.shape[0] // hop)
    f0 = tracker.track(x, sr, hop, n)
    assert f0.dtype == np.float32 and f0.shape == (n,)
    frame_t = (np.arange(n) + 1) * hop / sr
    steady = (frame_t > start + 0.08) & (frame_t < 0.7)
    assert np.all(f0[steady] > 0)
    assert np.max(np.abs(1200 * np.log2(f0[steady] / 220.0))) < 25
    assert np.all(f0[frame_t < start - 0.08] == 0)
    onset = frame_t[np.argmax(f0 > 0)]
    assert abs(onset - start) < 0.05


@pytest.mark.parametrize("name,lookahead", [("pesto", 240), ("crepe-tiny-live", 480), ("fcpe-live", 600)])
def test_streaming_trackers_stream_like_track_with_bounded_lookahead(name, lookahead):
    tracker = get_f0_tracker(name)
    try:
        find_f0_weights(tracker.weights_name)
    except WeightsMissingError:
        pytest.skip(f"weights for '{name}' not installed; run `{INSTALL_COMMAND}`")
    sr, hop = 24000, 120
    assert tracker.streaming and tracker.lookahead_samples(sr) == lookahead
    x = _tone(sr, 300.0, 0.6, start=0.1) + 0.01 * np.random.default_rng(3).standard_normal(int(0.6 * sr))
    n = x.shape[0] // hop
    ref = tracker.track(x, sr, hop, n)
    x = np.concatenate([x, np.zeros(8192)])    # what the stream is fed past the end: zeros, as track pads
    st = tracker.stream(sr, hop)
    outs, i = [], 0
    rng = np.random.default_rng(5)
    while st.frames_emitted < n:
        k = int(rng.choice([1, 64, 120, 1000, 4097]))
        blk = x[i:i + k] if i + k <= x.shape[0] else np.zeros(k)
        outs.append(st.push(blk))
        i += k
        # frame j is out as soon as (j + 1) * hop + lookahead samples are in, not before
        assert st.frames_emitted == max(0, (i - lookahead) // hop)
    got = np.concatenate(outs)[:n]
    assert np.array_equal(got > 0, ref > 0)
    v = ref > 0
    assert np.max(np.abs(1200 * np.log2(got[v] / ref[v]))) < 0.1


def test_missing_weights_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("SVC_HOST_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SVC_HOST_PATH", "")
    with pytest.raises(WeightsMissingError) as e:
        get_f0_tracker("fcpe").track(np.zeros(4800), 24000, 120, 40)
    msg = str(e.value)
    assert INSTALL_COMMAND in msg and "\n" not in msg


def test_changed_weights_are_refused(tmp_path, monkeypatch):
    root = tmp_path / "root"
    shutil.copytree(SHIPPED_TINY.parent, root / "f0" / "crepe-tiny")
    p = root / "f0" / "crepe-tiny" / "weights.safetensors"
    data = bytearray(p.read_bytes())
    data[-5] ^= 0xFF
    p.write_bytes(bytes(data))
    monkeypatch.setenv("SVC_HOST_PATH", str(root))
    with pytest.raises(ModelFormatError, match="sha256"):
        load_f0_weights("crepe-tiny")


def test_f0_method_choices_include_the_neural_trackers():
    from svc_dsp.engine.parameters import PARAMETERS
    from svc_dsp.features import f0_tracker_names

    choices = PARAMETERS["f0_method"].choices
    for name in ("crepe", "crepe-tiny", "fcpe", "pesto", "crepe-tiny-live", "fcpe-live"):
        assert name in choices and name in f0_tracker_names()


@pytest.mark.parametrize("name", ["crepe-tiny-live", "fcpe-live"])
def test_live_trackers_onnx_backend_equals_torch_backend(name):
    tracker = get_f0_tracker(name)
    try:
        find_f0_weights(tracker.weights_name)
    except WeightsMissingError:
        pytest.skip(f"weights for '{name}' not installed; run `{INSTALL_COMMAND}`")
    sr, hop = 24000, 120
    x = _tone(sr, 250.0, 0.4, start=0.05) + 0.003 * np.random.default_rng(6).standard_normal(int(0.4 * sr))
    n = x.shape[0] // hop
    st_onnx, st_torch = get_f0_tracker(name, backend="onnx").stream(sr, hop), get_f0_tracker(name, backend="torch").stream(sr, hop)
    assert st_onnx.session is not None and st_torch.session is None
    a = np.concatenate([st_onnx.push(x[i:i + 256]) for i in range(0, x.shape[0], 256)])
    b = np.concatenate([st_torch.push(x[i:i + 256]) for i in range(0, x.shape[0], 256)])
    assert a.shape == b.shape and np.array_equal(a > 0, b > 0) and (a > 0).sum() > n // 2
    v = a > 0
    assert np.max(np.abs(1200 * np.log2(a[v] / b[v]))) < 0.1
