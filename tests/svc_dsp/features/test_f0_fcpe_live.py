"""fcpe-live: the short-window FCPE network against the numpy reference forward, the streaming
resampler, the lookahead bound (no later sample changes a frame), and its parameters."""
from __future__ import annotations

import numpy as np
import pytest

from svc_dsp.errors import ParameterError
from svc_dsp.features import get_f0_tracker
from svc_dsp.features.f0_weights import INSTALL_COMMAND, WeightsMissingError, load_f0_weights
from tests.svc_dsp.features.neural_reference import fcpe_numpy, reference_clip


def _weights_or_skip() -> dict[str, np.ndarray]:
    try:
        return load_f0_weights("fcpe")
    except WeightsMissingError:
        pytest.skip(f"weights 'fcpe' not installed; run `{INSTALL_COMMAND}`")


def test_window_network_matches_numpy_forward_on_the_last_frame():
    import torch

    from svc_dsp.features.f0_fcpe import fcpe_mel
    from svc_dsp.features.f0_fcpe_live import FcpeWindowNet

    w = _weights_or_skip()
    mel = fcpe_mel(reference_clip(seconds=0.3))
    wins = np.stack([mel[s:s + 9] for s in (0, 10, 19)])              # (3, 9, 128)
    with torch.inference_mode():
        act = FcpeWindowNet(w)(torch.from_numpy(wins)).numpy()
    for b in range(3):
        np.testing.assert_allclose(act[b], fcpe_numpy(w, wins[b])[-1], atol=2e-4)


@pytest.mark.parametrize("sr", [24000, 44100, 48000])
def test_sinc_resampler_keeps_a_tone(sr):
    from svc_dsp.features.f0_fcpe_live import NET_SR, sinc_table

    table, k, g = sinc_table(sr)
    t = np.arange(int(0.1 * sr)) / sr
    x = np.sin(2 * np.pi * 440.0 * t)
    m = np.arange(200, 1400)
    b, p = (m * sr) // NET_SR, ((m * sr) % NET_SR) // g
    y = (x[b[:, None] + np.arange(-k + 1, k + 1)[None, :]] * table[p]).sum(axis=1)
    assert np.max(np.abs(y - np.sin(2 * np.pi * 440.0 * m / NET_SR))) < 2e-3
    # 7.5 kHz (above the 7.2 kHz cut, below 8 kHz) is attenuated
    z = np.sin(2 * np.pi * 7500.0 * t)
    yz = (z[b[:, None] + np.arange(-k + 1, k + 1)[None, :]] * table[p]).sum(axis=1)
    assert np.max(np.abs(yz)) < 0.5


@pytest.mark.parametrize("sr,hop", [(24000, 120), (44100, 256)])
def test_no_sample_past_the_lookahead_changes_a_frame(sr, hop):
    _weights_or_skip()
    tracker = get_f0_tracker("fcpe-live")
    la = tracker.lookahead_samples(sr)
    t = np.arange(int(0.5 * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 233.0 * t) + 0.1 * np.sin(2 * np.pi * 466.0 * t)
    n = x.shape[0] // hop
    ref = tracker.track(x, sr, hop, n)
    cut = 30 * hop + la                       # frames 0..29 may read only samples below cut
    y = x.copy()
    y[cut:] = np.random.default_rng(2).standard_normal(y.shape[0] - cut)
    got = tracker.track(y, sr, hop, n)
    np.testing.assert_array_equal(got[:30], ref[:30])
    assert not np.array_equal(got[30:40], ref[30:40])       # and the frame right after does read it


def test_steady_tone_is_tracked_live():
    _weights_or_skip()
    sr, hop = 48000, 256
    t = np.arange(int(0.8 * sr)) / sr
    x = sum(0.25 / h * np.sin(2 * np.pi * h * 311.1 * t) for h in range(1, 5))
    st = get_f0_tracker("fcpe-live").stream(sr, hop)
    f0 = np.concatenate([st.push(x[i:i + hop]) for i in range(0, x.shape[0], hop)])
    steady = f0[20:-10]
    assert np.all(steady > 0)
    assert np.max(np.abs(1200 * np.log2(steady / 311.1))) < 25


@pytest.mark.parametrize("opts", [{"lookahead_seconds": 0.005}, {"lookahead_seconds": 0.2},
                                  {"history_frames": 1}, {"history_frames": 2.5}, {"threshold": 2.0},
                                  {"backend": "tf"}])
def test_bad_options_are_refused_with_the_allowed_range(opts):
    with pytest.raises(ParameterError, match="allowed"):
        get_f0_tracker("fcpe-live", **opts)


def test_lookahead_is_declared_per_rate():
    tracker = get_f0_tracker("fcpe-live")
    assert tracker.streaming
    assert [tracker.lookahead_samples(sr) for sr in (16000, 24000, 48000)] == [400, 600, 1200]
    # the 16 kHz window cut sits about 19 ms after the network frame whatever the input rate
    assert all(290 <= tracker.cut_samples(sr) <= 330 for sr in (16000, 22050, 24000, 44100, 48000, 96000))


def test_onnx_backend_equals_torch_backend():
    _weights_or_skip()
    sr, hop = 24000, 120
    t = np.arange(int(0.4 * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 180.0 * t * (1 + 0.2 * t)) + 0.005 * np.random.default_rng(4).standard_normal(t.shape)
    n = x.shape[0] // hop
    a = get_f0_tracker("fcpe-live", backend="onnx").track(x, sr, hop, n)
    b = get_f0_tracker("fcpe-live", backend="torch").track(x, sr, hop, n)
    assert np.array_equal(a > 0, b > 0) and (a > 0).sum() > n // 2
    v = a > 0
    assert np.max(np.abs(1200 * np.log2(a[v] / b[v]))) < 0.1


def test_engine_streams_fcpe_live_on_a_voice_with_less_lookahead_with_constant_added_latency():
    """The demo voice allows 10 ms of tracker lookahead; fcpe-live's 25 ms delay the model by whole
    hops (the added latency) and the stream still equals the offline conversion."""
    _weights_or_skip()
    from svc_dsp.engine.converter import Converter
    from svc_dsp.engine.streaming import StreamingConverter
    from tests.signals import sung_tone

    sr = 48000
    base = StreamingConverter("demo", sr, 1024, f0_method="yin")
    sc = StreamingConverter("demo", sr, 1024, f0_method="fcpe-live")
    m = sc.model
    la = get_f0_tracker("fcpe-live").lookahead_samples(m.sample_rate)
    extra_hops = -(-(la - m.delay_hops * m.hop_size) // m.hop_size)
    assert extra_hops > 0
    assert sc.latency_samples - base.latency_samples == extra_hops * m.hop_size * sr // m.sample_rate
    x = sung_tone(sr, 0.6)
    block = 333              # odd: hops and network frames fall across block edges
    off = Converter("demo", f0_method="fcpe-live").convert(x, sr)
    lat = sc.latency_samples
    xx = np.concatenate([x, np.zeros(lat, np.float32)])
    y = np.concatenate([sc.process(xx[s:s + block]) for s in range(0, xx.shape[0], block)])[lat:]
    assert sc.xruns == 0
    assert np.abs(y - off).max() < 1e-3
    assert np.sqrt(np.mean(off ** 2)) > 1e-3          # the voice did sing
