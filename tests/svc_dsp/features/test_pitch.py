"""Pitch-contour utilities."""
from __future__ import annotations

import math

import numpy as np
import pytest

from svc_dsp.errors import ParameterError
from svc_dsp.features.pitch import (cents_error, gross_pitch_error, hz_to_midi, interpolate_unvoiced,
                                    midi_to_hz, octave_guard, transpose)


def test_transpose_scales_voiced_and_keeps_zeros():
    f0 = np.array([0.0, 220.0, 440.0, 0.0, -1.0], np.float32)
    out = transpose(f0, 12)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 440.0, 880.0, 0.0, 0.0])
    np.testing.assert_allclose(transpose(f0, -7)[1], 220.0 * 2 ** (-7 / 12), rtol=1e-6)
    np.testing.assert_allclose(transpose(f0, np.array([0, 12, -12, 5, 5]))[:3], [0.0, 440.0, 220.0])
    with pytest.raises(ParameterError):
        transpose(f0, np.array([1.0, 2.0]))
    with pytest.raises(ParameterError):
        transpose(f0, math.nan)


def test_interpolate_unvoiced_linear_and_edge_hold():
    f0 = np.array([0, 0, 100, 0, 0, 200, 0], np.float32)
    filled, voiced = interpolate_unvoiced(f0)
    assert filled.dtype == np.float32 and voiced.dtype == bool
    np.testing.assert_allclose(filled, [100, 100, 100, 133.33333, 166.66667, 200, 200], rtol=1e-6)
    assert voiced.tolist() == [False, False, True, False, False, True, False]
    filled, voiced = interpolate_unvoiced(np.zeros(4))
    assert filled.tolist() == [0.0] * 4 and not voiced.any()
    filled, voiced = interpolate_unvoiced(np.zeros(0))
    assert filled.size == 0 and voiced.size == 0


def test_octave_guard_fixes_blips_and_keeps_sustained_leaps():
    f0 = np.full(200, 220.0)
    f0[100:] = 440.0                      # a real octave leap, kept
    f0[[20, 21, 150]] *= [2.0, 2.0, 0.5]  # octave errors, folded back
    f0[60:63] = 0.0                       # unvoiced stays unvoiced
    out = octave_guard(f0)
    expected = np.full(200, 220.0)
    expected[100:] = 440.0
    expected[60:63] = 0.0
    np.testing.assert_allclose(out, expected)
    assert octave_guard(np.zeros(10)).tolist() == [0.0] * 10
    with pytest.raises(ParameterError):
        octave_guard(f0, window=1)


def test_midi_conversions_roundtrip_and_unvoiced():
    assert hz_to_midi(440.0) == pytest.approx(69.0)
    assert midi_to_hz(60.0) == pytest.approx(261.6255653)
    hz = np.array([0.0, 110.0, 261.6255653, 1000.0])
    midi = hz_to_midi(hz)
    assert math.isnan(midi[0])
    np.testing.assert_allclose(midi_to_hz(midi), hz, rtol=1e-12)


def test_cents_and_gross_errors_on_frames_voiced_in_both():
    ref = np.array([100.0, 200.0, 0.0, 400.0, 300.0])
    est = np.array([100.0 * 2 ** (10 / 1200), 0.0, 150.0, 800.0, 300.0])
    np.testing.assert_allclose(cents_error(ref, est), [10.0, 1200.0, 0.0])
    assert gross_pitch_error(ref, est) == pytest.approx(1 / 3)
    assert math.isnan(gross_pitch_error(np.zeros(3), np.zeros(3)))
    with pytest.raises(ParameterError, match="same number of frames"):
        cents_error(ref, est[:3])
