"""F0 trackers: accuracy on synthetic singing, voicing, octave guard, streaming == offline, grid."""
from __future__ import annotations

import numpy as np
import pytest

from svc_dsp.errors import AudioError, ParameterError
from svc_dsp.features import f0 as f0_mod
from svc_dsp.features import f0_tracker_names, get_f0_tracker
from svc_dsp.features.f0 import F0Tracker, n_frames_for
from svc_dsp.features.pitch import cents_error, gross_pitch_error

SR, HOP = 24000, 120


# ---------------------------------------------------------------- synthetic signals
def harmonic(f: np.ndarray, sr: int, amps=None, n_h: int = 15) -> np.ndarray:
    """Sum of harmonics of a time-varying F0 (phase-continuous), none above 0.95 * Nyquist."""
    ph = 2 * np.pi * np.cumsum(f) / sr
    out = np.zeros_like(f)
    for k in range(1, n_h + 1):
        a = amps[k - 1] if amps is not None else 1.0 / k
        out += a * np.sin(k * ph) * (k * f < 0.475 * sr)
    return out


def vibrato_tone(sr=SR, dur=1.5, f0=220.0):
    t = np.arange(int(sr * dur)) / sr
    f = f0 * 2 ** (0.5 * np.sin(2 * np.pi * 5.5 * t) / 12)
    return (0.3 * harmonic(f, sr)).astype(np.float32), f


def glide(sr=SR, dur=1.5, lo=80.0, hi=900.0):
    t = np.arange(int(sr * dur)) / sr
    f = lo * (hi / lo) ** (t / dur)
    return (0.3 * harmonic(f, sr)).astype(np.float32), f


def sung_tone(sr=SR, dur=1.5, f0=330.0, seed=1):
    """Vibrato + drift, a formant bump near 800 Hz, fades, breath noise at about -18 dB."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * dur)) / sr
    f = f0 * 2 ** ((0.4 * np.sin(2 * np.pi * 5 * t) + 0.1 * np.sin(2 * np.pi * 0.7 * t)) / 12)
    amps = [k ** -0.8 * (1 + 1.5 * np.exp(-(((k * f0) - 800) / 300) ** 2)) for k in range(1, 25)]
    x = harmonic(f, sr, amps, n_h=24)
    x = 0.1 * x / np.std(x)
    env = np.clip(t / 0.05, 0, 1) * np.clip((dur - t) / 0.05, 0, 1)
    x = x * env + 0.1 * 10 ** (-18 / 20) * rng.standard_normal(t.size)
    return x.astype(np.float32), f * (env > 0.5)


def on_grid(f: np.ndarray, n: int, hop=HOP) -> np.ndarray:
    ref = f[np.minimum((np.arange(n) + 1) * hop, f.size - 1)].astype(np.float32)
    ref[:3] = 0.0   # frames that see the zeros before the start
    ref[-3:] = 0.0  # ... or after the end
    return ref


SIGNALS = {"vibrato": vibrato_tone, "glide": glide, "sung": sung_tone}


# ---------------------------------------------------------------- accuracy and voicing
@pytest.mark.parametrize("signal", sorted(SIGNALS))
@pytest.mark.parametrize("name,max_gpe,max_cents", [("yin", 0.02, 20.0), ("harvest", 0.02, 20.0),
                                                    ("dio", 0.05, 30.0)])
def test_accuracy_on_voiced_frames(name, max_gpe, max_cents, signal):
    x, f = SIGNALS[signal]()
    n = n_frames_for(x.size, HOP)
    est = get_f0_tracker(name).track(x, SR, HOP, n)
    ref = on_grid(f, n)
    assert est.dtype == np.float32 and est.shape == (n,)
    assert np.mean(est[ref > 0] > 0) > 0.95, "voiced frames reported unvoiced"
    assert gross_pitch_error(ref, est) < max_gpe
    assert np.median(np.abs(cents_error(ref, est))) < max_cents


@pytest.mark.parametrize("name,max_voiced", [("yin", 0.02), ("harvest", 0.25), ("dio", 0.25)])
def test_silence_and_noise_are_mostly_unvoiced(name, max_voiced):
    tr = get_f0_tracker(name)
    silence = np.zeros(SR, np.float32)
    noise = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    n = n_frames_for(SR, HOP)
    assert np.all(tr.track(silence, SR, HOP, n) == 0.0)
    assert np.mean(tr.track(noise, SR, HOP, n) > 0) <= max_voiced


def _octave_jumps(est: np.ndarray) -> int:
    both = (est[1:] > 0) & (est[:-1] > 0)
    ratio = np.where(both, est[1:] / np.where(both, est[:-1], 1.0), 1.0)
    return int(np.sum(np.abs(np.log2(ratio)) > 0.5))


def test_octave_guard_keeps_ambiguous_tone_continuous():
    # strong 2nd harmonic, a fundamental that fades in and out: plain YIN flips octaves
    t = np.arange(2 * SR) / SR
    f = 150 * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    ph = 2 * np.pi * np.cumsum(f) / SR
    a1 = 0.05 + 0.45 * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    x = (0.3 * (a1 * np.sin(ph) + np.sin(2 * ph) + 0.2 * np.sin(3 * ph) + 0.3 * np.sin(4 * ph))).astype(np.float32)
    n = n_frames_for(x.size, HOP)
    raw = get_f0_tracker("yin", octave_hold_seconds=0.0).track(x, SR, HOP, n)
    guarded = get_f0_tracker("yin").track(x, SR, HOP, n)
    assert _octave_jumps(raw) >= 5, "test signal no longer octave-ambiguous for plain YIN"
    assert _octave_jumps(guarded) <= 1
    assert np.mean(guarded > 0) > 0.95


@pytest.mark.parametrize("fa,fb", [(200.0, 400.0), (300.0, 600.0), (400.0, 200.0)])
def test_octave_guard_follows_a_real_octave_leap(fa, fb):
    t = np.arange(SR) / SR
    f = np.where(t < 0.5, fa, fb) * 2 ** (0.3 * np.sin(2 * np.pi * 5 * t) / 12)
    x = (0.3 * harmonic(f, SR)).astype(np.float32)
    n = n_frames_for(x.size, HOP)
    est = get_f0_tracker("yin").track(x, SR, HOP, n)
    ref = f[np.minimum((np.arange(n) + 1) * HOP, f.size - 1)]
    wrong = np.flatnonzero(np.abs(np.log2(np.maximum(est, 1.0) / ref)) > 0.5)
    leap = SR // 2 // HOP - 1                                  # frame centred on the leap
    assert np.all(wrong[wrong > 2] <= leap + 4), f"late octave frames: {wrong}"


# ---------------------------------------------------------------- streaming == offline
def _stream_all(stream, x: np.ndarray, sizes) -> np.ndarray:
    outs, pos, k = [], 0, 0
    while pos < x.size:
        size = sizes[k % len(sizes)]
        outs.append(stream.push(x[pos:pos + size]))
        pos += size
        k += 1
    return np.concatenate(outs)


@pytest.mark.parametrize("sizes", [[1], [7], [120], [512], [4096], "random"])
def test_yin_stream_equals_track_exactly(sizes):
    x, _ = sung_tone(dur=0.6 if sizes == [1] else 1.2)
    x[SR // 4: SR // 4 + 1200] = 0.0                           # an unvoiced gap inside
    if sizes == "random":
        sizes = list(np.random.default_rng(3).integers(0, 900, size=64))
    tr = get_f0_tracker("yin")
    st = tr.stream(SR, HOP)
    got = _stream_all(st, x, sizes)
    complete = (x.size - tr.lookahead_samples(SR)) // HOP
    assert got.dtype == np.float32 and got.size == complete == st.frames_emitted
    ref = tr.track(x, SR, HOP, n_frames_for(x.size, HOP))
    np.testing.assert_array_equal(got, ref[:complete])
    assert np.mean(ref > 0) > 0.7


@pytest.mark.parametrize("sr,hop,lookahead", [(44100, 512, 0.0), (16000, 160, 0.02), (48000, 480, 0.005)])
def test_yin_stream_equals_track_other_grids(sr, hop, lookahead):
    x, _ = vibrato_tone(sr=sr, dur=0.8)
    tr = get_f0_tracker("yin", lookahead_seconds=lookahead)
    sizes = list(np.random.default_rng(sr).integers(1, 3 * hop, size=50))
    st = tr.stream(sr, hop)
    got = _stream_all(st, x, sizes)
    ref = tr.track(x, sr, hop, n_frames_for(x.size, hop))
    np.testing.assert_array_equal(got, ref[:got.size])
    assert got.size == (x.size - tr.lookahead_samples(sr)) // hop
    st.reset()                                                 # a reset stream starts over
    np.testing.assert_array_equal(_stream_all(st, x, [x.size]), got)


def test_yin_stream_reads_nan_as_zero_and_track_refuses_it():
    x, _ = vibrato_tone(dur=0.3)
    bad = x.copy()
    bad[1000:1010] = np.nan
    clean = x.copy()
    clean[1000:1010] = 0.0
    tr = get_f0_tracker("yin")
    st = tr.stream(SR, HOP)
    np.testing.assert_array_equal(st.push(bad), tr.stream(SR, HOP).push(clean))
    with pytest.raises(AudioError, match="NaN"):
        tr.track(bad, SR, HOP, n_frames_for(bad.size, HOP))


@pytest.mark.parametrize("lookahead", [0.0, 0.010, 0.020])
def test_yin_lookahead_is_respected_and_measured(lookahead):
    tr = get_f0_tracker("yin", lookahead_seconds=lookahead)
    la = tr.lookahead_samples(SR)
    assert la == round(lookahead * SR)
    x, _ = vibrato_tone(dur=0.5)
    n = n_frames_for(x.size, HOP)
    base = tr.track(x, SR, HOP, n)
    noise = (0.3 * np.random.default_rng(1).standard_normal(x.size)).astype(np.float32)
    for k in (6000, 6001, 6059, 51 * HOP + la - 1, 9000):   # incl. the last sample frame 50 may read
        y = x.copy()
        y[k:] = noise[k:]
        first = int(np.flatnonzero(tr.track(y, SR, HOP, n) != base)[0])
        # frame j may read samples < (j + 1) * hop + lookahead only ...
        assert (first + 1) * HOP + la > k
        # ... and does read close to that limit (decimation may drop the last sample or so)
        assert first == 0 or first * HOP + la <= k + 2


# ---------------------------------------------------------------- grid and errors
@pytest.mark.parametrize("name", ["yin", "harvest", "dio"])
@pytest.mark.parametrize("n_samples", [0, 1, HOP - 1, HOP, 5 * HOP + 37])
def test_output_length_is_n_frames(name, n_samples):
    x, _ = vibrato_tone(dur=0.01)
    x = np.resize(x, n_samples)
    n = n_frames_for(n_samples, HOP)
    assert n == -(-n_samples // HOP)
    out = get_f0_tracker(name).track(x, SR, HOP, n)
    assert out.dtype == np.float32 and out.shape == (n,)
    assert get_f0_tracker(name).track(x, SR, HOP, n + 3).shape == (n + 3,)   # padded with zeros


def test_registry_names_errors_and_plugins(monkeypatch):
    assert {"yin", "harvest", "dio"} <= set(f0_tracker_names())
    assert get_f0_tracker(" YIN ").name == "yin"
    with pytest.raises(ParameterError) as err:
        get_f0_tracker("rmvpe")
    assert "rmvpe" in str(err.value) and "harvest" in str(err.value) and "yin" in str(err.value)
    with pytest.raises(ParameterError, match="offline"):
        get_f0_tracker("harvest").stream(SR, HOP)
    with pytest.raises(ParameterError, match="lookahead"):
        get_f0_tracker("dio").lookahead_samples(SR)
    with pytest.raises(ParameterError, match="lookahead_seconds"):
        get_f0_tracker("yin", lookahead_seconds=0.05)
    with pytest.raises(ParameterError, match="does not accept"):
        get_f0_tracker("yin", bogus=1)

    class Constant(F0Tracker):
        name = "constant"
        streaming = False

        def track(self, audio, sample_rate, hop, n_frames, f0_min=50.0, f0_max=1100.0):
            return np.full(n_frames, 100.0, np.float32)

    monkeypatch.setattr(f0_mod, "_REGISTRY", dict(f0_mod._REGISTRY))
    f0_mod.register_f0_tracker(Constant)
    assert "constant" in f0_tracker_names()
    assert get_f0_tracker("constant").track(np.zeros(10), SR, HOP, 2).tolist() == [100.0, 100.0]


@pytest.mark.parametrize("name", ["yin", "dio"])
def test_bad_arguments_are_refused(name):
    tr = get_f0_tracker(name)
    with pytest.raises(AudioError, match="mono"):
        tr.track(np.zeros((2, 1000), np.float32), SR, HOP, 9)
    with pytest.raises(ParameterError, match="hop"):
        tr.track(np.zeros(1000, np.float32), SR, 0, 9)
    with pytest.raises(ParameterError, match="f0_min"):
        tr.track(np.zeros(1000, np.float32), SR, HOP, 9, f0_min=500.0, f0_max=100.0)
