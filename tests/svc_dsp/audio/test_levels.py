"""svc_dsp.audio.levels: dB helpers, BS.1770 loudness, true peak, normalisation + limiter."""
from __future__ import annotations

import math

import numpy as np
import pytest

from svc_dsp.audio.levels import (
    db_to_gain,
    gain_to_db,
    integrated_lufs,
    normalize_loudness,
    peak_db,
    rms_db,
    true_peak_db,
)
from svc_dsp.errors import ParameterError


def _sine(freq, sr, seconds, amp=1.0, phase=0.0):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.float32)


def test_db_helpers():
    assert db_to_gain(-6.0206) == pytest.approx(0.5, abs=1e-4)
    assert gain_to_db(0.5) == pytest.approx(-6.0206, abs=1e-3)
    assert gain_to_db(0.0) == -120.0 and gain_to_db(0.0, floor_db=-90.0) == -90.0
    x = _sine(1000, 48000, 0.5)
    assert rms_db(x) == pytest.approx(-3.0103, abs=0.01)
    assert peak_db(x) == pytest.approx(0.0, abs=0.01)
    assert rms_db(np.zeros(10)) == -120.0 and peak_db(np.zeros(0)) == -120.0


@pytest.mark.parametrize("sr", [48000, 44100])
def test_lufs_of_full_scale_sine(sr):
    x = _sine(997, sr, 3.0)
    assert integrated_lufs(x, sr) == pytest.approx(-3.01, abs=0.05)
    # two identical channels add their power: +3.01 LU
    assert integrated_lufs(np.stack([x, x]), sr) == pytest.approx(0.0, abs=0.05)
    assert integrated_lufs(x * 0.1, sr) == pytest.approx(-23.01, abs=0.05)


def test_lufs_gating():
    sr = 48000
    x = _sine(997, sr, 2.0, amp=0.5)
    ref = integrated_lufs(x, sr)
    # ungated, 4 s of silence after 2 s of sine would read ~4.8 LU lower; the absolute gate
    # drops the silent blocks (only the 3 blocks straddling the edge still count, ~0.34 LU)
    padded = np.concatenate([x, np.zeros(sr * 4, np.float32)])
    assert integrated_lufs(padded, sr) == pytest.approx(ref, abs=0.5)
    quiet = np.concatenate([x, x * 0.01])  # the -40 dB half is under the relative gate
    assert integrated_lufs(quiet, sr) == pytest.approx(ref, abs=0.5)
    assert integrated_lufs(np.zeros(sr), sr) == -math.inf
    assert math.isfinite(integrated_lufs(x[:1000], sr))  # shorter than one block


def test_true_peak_finds_inter_sample_peaks():
    sr = 48000
    x = _sine(sr / 4, sr, 0.5, amp=0.5, phase=np.pi / 4)  # samples at +-0.354, peaks at 0.5
    fade = np.hanning(2000)[:1000].astype(np.float32)
    x[:1000] *= fade
    x[-1000:] *= fade[::-1]
    assert peak_db(x) == pytest.approx(-9.03, abs=0.05)
    assert true_peak_db(x, sr) == pytest.approx(-6.02, abs=0.1)
    assert true_peak_db(np.zeros((2, 100)), sr) == -120.0


def _program(sr, seconds=4.0):
    tone = _sine(220, sr, seconds, amp=0.1) + _sine(660, sr, seconds, amp=0.03)
    x = np.stack([tone, np.roll(tone, 37)])
    for start in (0.5, 1.7, 3.1):  # short loud transients that will need limiting
        i = int(start * sr)
        x[:, i:i + 48] += _sine(3000, sr, 48 / sr, amp=0.6)
    return x


@pytest.mark.parametrize("sr", [44100, 48000])
def test_normalize_limits_true_peak(sr):
    x = _program(sr)
    y, rep = normalize_loudness(x, sr, target_lufs=-12.0, ceiling_db=-1.0)
    assert y.shape == x.shape and y.dtype == np.float32
    assert set(rep) >= {"measured_lufs", "gain_db", "limited_db_max"}
    assert rep["gain_db"] == pytest.approx(-12.0 - rep["measured_lufs"])
    assert rep["limited_db_max"] > 3.0
    assert true_peak_db(y, sr) <= -1.0
    assert np.max(np.abs(y)) < 1.0
    # the limiter only ever reduces: |y| <= |x * gain| sample by sample
    g = db_to_gain(rep["gain_db"])
    assert np.all(np.abs(y) <= np.abs(x.astype(np.float64) * g) + 1e-6)
    # the limiter acts locally: from 5 ms before a transient until its ~50 ms release fades
    far = np.ones(x.shape[1], bool)
    for start in (0.5, 1.7, 3.1):
        far[int((start - 0.01) * sr):int((start + 0.4) * sr)] = False
    assert np.allclose(y[:, far], (x * g)[:, far], atol=1e-3, rtol=0)
    assert rep["output_lufs"] == pytest.approx(-12.0, abs=0.5)


def test_normalize_without_limiting_and_silence():
    sr = 48000
    x = _sine(440, sr, 2.0, amp=0.1)
    y, rep = normalize_loudness(x, sr, target_lufs=-18.0)
    assert rep["limited_db_max"] == 0.0 and y.shape == x.shape
    assert integrated_lufs(y, sr) == pytest.approx(-18.0, abs=0.05)
    s = np.zeros((2, 1000), np.float32)
    z, rep = normalize_loudness(s, sr)
    assert rep["gain_db"] == 0.0 and not z.any()
    with pytest.raises(ParameterError, match="ceiling_db"):
        normalize_loudness(x, sr, ceiling_db=1.0)
