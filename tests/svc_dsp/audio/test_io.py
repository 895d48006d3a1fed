"""svc_dsp.audio.io: reading, refusing bad files, atomic writing, clipping, sanitising."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from svc_dsp.audio.io import (
    AtomicAudioWriter,
    iter_blocks,
    load_audio,
    read_info,
    sanitize,
    save_audio,
)
from svc_dsp.errors import AudioError, SvcError, UnsupportedAudioError


def _noise(channels: int, frames: int, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(-amp, amp, (channels, frames))).astype(np.float32)


@pytest.mark.parametrize("name,fmt,subtype,tol", [
    ("a.wav", "WAV", "PCM_16", 1.0 / 32767),
    ("a.wav", "WAV", "PCM_24", 1.0 / 2 ** 22),
    ("a.wav", "WAV", "FLOAT", 0.0),
    ("a.flac", "FLAC", "PCM_16", 1.0 / 32767),
    ("a.flac", "FLAC", "PCM_24", 1.0 / 2 ** 22),
])
def test_round_trip_keeps_subtype(tmp_path, name, fmt, subtype, tol):
    x = _noise(2, 4000)
    path = tmp_path / name
    assert save_audio(path, x, 44100, subtype=subtype) == 0
    y, sr, info = load_audio(path)
    assert sr == 44100 and y.shape == (2, 4000) and y.dtype == np.float32
    assert (info.format, info.subtype, info.channels, info.frames) == (fmt, subtype, 2, 4000)
    assert np.max(np.abs(y - x)) <= tol
    assert read_info(path) == info


def test_default_subtype_from_extension(tmp_path):
    save_audio(tmp_path / "d.wav", _noise(1, 100), 48000)
    assert read_info(tmp_path / "d.wav").subtype == "PCM_16"
    save_audio(tmp_path / "d.aif", _noise(1, 100), 48000)
    assert read_info(tmp_path / "d.aif").format == "AIFF"


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000])
def test_sample_rates(tmp_path, sr):
    save_audio(tmp_path / "r.wav", _noise(1, 256), sr)
    y, got, _ = load_audio(tmp_path / "r.wav")
    assert got == sr and y.shape == (1, 256)


@pytest.mark.parametrize("channels", [1, 2, 3, 4, 5, 6])
def test_channel_counts(tmp_path, channels):
    x = _noise(channels, 300)
    save_audio(tmp_path / "c.flac", x, 48000, subtype="PCM_24")
    y, _, info = load_audio(tmp_path / "c.flac")
    assert y.shape == (channels, 300) and info.channels == channels
    assert np.allclose(y, x, atol=1e-6)


def test_mono_1d_save_and_partial_read_and_blocks(tmp_path):
    x = _noise(1, 10000)[0]
    save_audio(tmp_path / "m.wav", x, 16000, subtype="FLOAT")
    part, _, _ = load_audio(tmp_path / "m.wav", start=1000, frames=500)
    assert np.array_equal(part[0], x[1000:1500])
    blocks = list(iter_blocks(tmp_path / "m.wav", 3000))
    assert [b.shape for b in blocks] == [(1, 3000)] * 3 + [(1, 1000)]
    assert np.array_equal(np.concatenate(blocks, axis=1)[0], x)
    with pytest.raises(AudioError, match="start=20000"):
        load_audio(tmp_path / "m.wav", start=20000)


def test_truncated_wav_refused(tmp_path):
    path = tmp_path / "cut.wav"
    save_audio(path, _noise(2, 20000), 44100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedAudioError, match=r"cut\.wav.*truncated"):
        load_audio(path)
    path.write_bytes(data[:30])  # cut inside the header
    with pytest.raises(UnsupportedAudioError, match=r"cut\.wav.*libsndfile"):
        load_audio(path)


def test_truncated_flac_refused(tmp_path):
    path = tmp_path / "cut.flac"
    save_audio(path, _noise(2, 48000), 48000, subtype="PCM_24")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnsupportedAudioError, match=r"cut\.flac.*(truncated|libsndfile)"):
        load_audio(path)


def test_text_file_named_wav_refused(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio, just some text\n" * 10)
    with pytest.raises(UnsupportedAudioError, match=r"notes\.wav.*not readable as audio.*libsndfile"):
        load_audio(path)
    with pytest.raises(SvcError):
        read_info(path)


def test_empty_files_refused(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros((0, 1), np.float32), 44100)
    with pytest.raises(AudioError, match=r"empty\.wav.*0 samples.*empty"):
        load_audio(path)
    zero = tmp_path / "zero.wav"
    zero.write_bytes(b"")
    with pytest.raises(AudioError, match=r"zero\.wav.*0 bytes.*empty"):
        load_audio(zero)
    with pytest.raises(AudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")


def test_unsupported_sample_rate_refused(tmp_path):
    path = tmp_path / "low.wav"
    sf.write(path, np.zeros((400, 1), np.float32), 4000)
    with pytest.raises(UnsupportedAudioError, match=r"low\.wav.*4000 Hz.*8000\.\.192000"):
        load_audio(path)
    with pytest.raises(UnsupportedAudioError, match="4000 Hz"):
        save_audio(tmp_path / "out.wav", np.zeros((1, 10)), 4000)


def test_atomic_writer_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "out.wav"
    with pytest.raises(RuntimeError, match="boom"):
        with AtomicAudioWriter(path, 48000, 2) as w:
            w.write(_noise(2, 1000))
            assert w.temp_path is not None
            name = os.path.basename(w.temp_path)
            assert name.startswith(".") and name.endswith(".partial")
            assert os.path.dirname(w.temp_path) == str(tmp_path)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_writer_keeps_old_file_on_error_and_replaces_on_success(tmp_path):
    path = tmp_path / "out.wav"
    save_audio(path, np.full((1, 100), 0.25, np.float32), 48000, subtype="FLOAT")
    with pytest.raises(KeyboardInterrupt):
        with AtomicAudioWriter(path, 48000, 1, subtype="FLOAT") as w:
            w.write(np.full((1, 50), -0.5, np.float32))
            raise KeyboardInterrupt
    y, _, _ = load_audio(path)
    assert y.shape == (1, 100) and np.all(y == 0.25)
    with AtomicAudioWriter(path, 48000, 1, subtype="FLOAT") as w:
        w.write(np.full((1, 50), -0.5, np.float32))
        w.write(np.full(30, 0.5, np.float32))
    y, _, _ = load_audio(path)
    assert y.shape == (1, 80) and w.frames_written == 80
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_writer_rejects_wrong_block_shape(tmp_path):
    with pytest.raises(AudioError, match=r"\(2, n\)"):
        with AtomicAudioWriter(tmp_path / "x.wav", 48000, 2) as w:
            w.write(np.zeros((100, 2), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_unknown_extension_refused(tmp_path):
    with pytest.raises(UnsupportedAudioError, match=r"\.xyz.*format="):
        save_audio(tmp_path / "x.xyz", np.zeros((1, 10)), 48000)
    save_audio(tmp_path / "x.xyz", np.zeros((1, 10)), 48000, format="WAV")
    assert read_info(tmp_path / "x.xyz").format == "WAV"


def test_clipping_counted_for_pcm_and_not_for_float(tmp_path):
    x = np.array([[0.5, 1.5, -2.0, 1.0, -1.0, 0.0]], np.float32)
    assert save_audio(tmp_path / "p.wav", x, 48000, subtype="PCM_16") == 2
    y, _, _ = load_audio(tmp_path / "p.wav")
    assert y[0, 1] > 0.999 and y[0, 2] <= -0.999  # clipped, not wrapped
    assert save_audio(tmp_path / "f.wav", x, 48000, subtype="FLOAT") == 0
    y, _, _ = load_audio(tmp_path / "f.wav")
    assert np.array_equal(y, x)
    with AtomicAudioWriter(tmp_path / "n.wav", 48000, 1, subtype="PCM_24") as w:
        w.write(np.array([[np.nan, np.inf, 3.0]]))
    assert (w.nonfinite_samples, w.clipped_samples) == (2, 1)


def test_sanitize():
    clean = np.zeros((2, 10), np.float32)
    out, warns = sanitize(clean)
    assert out is clean and warns == []
    bad = clean.copy()
    bad[0, 1] = np.nan
    bad[1, 2] = np.nan
    bad[1, 3] = np.nan
    bad[0, 5] = -np.inf
    out, warns = sanitize(bad)
    assert np.isfinite(out).all() and np.count_nonzero(out) == 0
    assert warns == ["3 NaN and 1 inf samples replaced by 0"]
    assert np.isnan(bad[0, 1])  # input untouched
