"""Converter: shape/rate/length invariants, determinism, bad input, parameters."""
from __future__ import annotations

import numpy as np
import pytest

from svc_dsp.engine.converter import Converter
from svc_dsp.errors import AudioError, ParameterError, UnknownSpeakerError, UnsupportedAudioError
from tests.signals import sung_tone


@pytest.fixture(scope="module")
def conv(random_model):
    return Converter(random_model)


@pytest.mark.parametrize("sr", [8000, 11025, 22050, 44100, 48000, 96000, 192000])
def test_rates_keep_shape_and_length(conv, sr):
    x = sung_tone(sr, 0.37)
    y = conv.convert(x, sr)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.abs(y).max() > 1e-3


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_channels_kept(conv, channels):
    x = np.stack([sung_tone(44100, 0.3, seed=c) * (1 - 0.1 * c) for c in range(channels)])
    y = conv.convert(x, 44100)
    assert y.shape == x.shape and y.dtype == np.float32


def test_mono_1d_stays_1d(conv):
    x = sung_tone(48000, 0.2)
    assert conv.convert(x, 48000).ndim == 1


def test_deterministic(conv):
    x = sung_tone(44100, 0.5)
    a, b = conv.convert(x, 44100), conv.convert(x, 44100)
    assert a.tobytes() == b.tobytes()


def test_pieces_of_a_long_signal_equal_whole_in_offline_f0_slicing(random_model, monkeypatch):
    """Offline trackers run on slices with real-audio context; the joins must not show."""
    import svc_dsp.engine.converter as cm

    x = np.concatenate([sung_tone(24000, 1.0, f0=f, seed=i) for i, f in enumerate([200, 260, 180, 300])])
    c = Converter(random_model, f0_method="dio")
    whole = c.convert(x, 24000)
    monkeypatch.setattr(cm, "F0_SLICE_SECONDS", 1.3)
    monkeypatch.setattr(cm, "F0_CONTEXT_SECONDS", 0.5)
    sliced = c.convert(x, 24000)
    # F0 at the joins agrees because every slice saw real audio around it
    assert np.abs(whole - sliced).max() < 0.05
    assert np.sqrt(np.mean((whole - sliced) ** 2)) < 0.01


def test_nan_inf_replaced_with_warning(conv):
    x = sung_tone(44100, 0.3)
    x[100] = np.nan
    x[200] = np.inf
    with pytest.warns(UserWarning, match="1 NaN and 1 inf"):
        y = conv.convert(x, 44100)
    assert np.isfinite(y).all()
    assert conv.last_warnings


@pytest.mark.parametrize("n", [0, 1, 5, 100])
def test_empty_and_tiny(conv, n):
    x = np.zeros(n, np.float32) + 0.1
    y = conv.convert(x, 44100)
    assert y.shape == (n,) and np.isfinite(y).all()


def test_silence_dc_and_clipped(conv):
    sr = 44100
    silent = np.zeros(sr * 2, np.float32)
    assert np.abs(conv.convert(silent, sr)).max() < 1e-4  # gate keeps silence silent
    dc = np.full(sr, 0.5, np.float32)
    y = conv.convert(dc, sr)
    assert np.isfinite(y).all() and np.abs(y).max() < 1.0
    clipped = np.clip(sung_tone(sr, 0.5) * 20, -1, 1)
    assert np.isfinite(conv.convert(clipped, sr)).all()


def test_bad_arrays_refused(conv):
    with pytest.raises(AudioError, match="dtype int16"):
        conv.convert(np.zeros(10, np.int16), 44100)
    with pytest.raises(UnsupportedAudioError, match="4000 Hz is outside 8000..192000"):
        conv.convert(np.zeros(10, np.float32), 4000)
    with pytest.raises(AudioError, match=r"shape \(1, 2, 3\)"):
        conv.convert(np.zeros((1, 2, 3), np.float32), 44100)


def test_parameters_validated(random_model):
    c = Converter(random_model)
    with pytest.raises(ParameterError, match=r"transpose.*out of range.*\[-36.0, 36.0\]"):
        c.transpose = 99
    with pytest.raises(UnknownSpeakerError, match="speaker 'bob'.*alto, tenor"):
        c.speaker = "bob"
    with pytest.raises(ParameterError, match="choose one of yin, harvest, dio"):
        c.f0_method = "rmvpe"
    with pytest.raises(ParameterError, match="unknown parameter 'pitch'"):
        c.set("pitch", 1)
    c.t = 3  # so-vits alias
    assert c.transpose == 3.0


def test_bypass_and_mix(random_model):
    x = np.stack([sung_tone(44100, 0.3), sung_tone(44100, 0.3, seed=1)])
    assert np.array_equal(Converter(random_model, bypass=True).convert(x, 44100), x)
    dry = Converter(random_model, mix=0.0).convert(x, 44100)
    assert np.allclose(dry, x, atol=1e-6)
    half = Converter(random_model, mix=0.5, output_gain_db=-6.0).convert(x, 44100)
    wet = Converter(random_model).convert(x, 44100)
    g = 10 ** (-6 / 20)
    assert np.allclose(half, g * (0.5 * x + 0.5 * wet), atol=1e-5)


def test_transpose_moves_pitch(random_model):
    from svc_dsp.features.f0 import get_f0_tracker

    sr = 24000
    t = np.arange(sr) / sr
    x = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.15 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for st in (0.0, 7.0):
        y = Converter(random_model, transpose=st).convert(x, sr)
        f0 = get_f0_tracker("harvest").track(y, sr, 120, 200, 50, 1100)
        v = f0[50:150]
        v = v[v > 0]
        assert len(v) > 50
        assert abs(12 * np.log2(np.median(v) / 220) - st) < 0.5


def test_loudness_match_follows_input(random_model):
    sr = 24000
    x = sung_tone(sr, 1.0)
    x[: sr // 2] *= 0.1  # first half 20 dB quieter
    y1 = Converter(random_model, loudness_match=1.0).convert(x, sr)
    r = lambda a: np.sqrt(np.mean(a ** 2))  # noqa: E731
    ratio_in = r(x[sr // 8: 3 * sr // 8]) / r(x[5 * sr // 8: 7 * sr // 8])
    ratio_out = r(y1[sr // 8: 3 * sr // 8]) / r(y1[5 * sr // 8: 7 * sr // 8])
    assert abs(20 * np.log10(ratio_out / ratio_in)) < 3.0
