"""pluginval-style sweep of VoiceConversion: sample rates x block sizes x channel counts.

Every combination (120) checks: finite output without subnormals on noise; reported latency
equals the measured one; chunked reset=False processing (with one block larger than any
before) equals one reset=True call; bypass is transparent and keeps the latency; automation
every 32 samples stays finite and click-free; a restored raw_state renders identically.
Threads: eight instances in eight threads give identical (stereo) output, per rate.
Signals are short (0.02 s; a few hundred samples for block size 1) so the sweep stays fast.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest

from host_bridge.effect import VoiceConversion
from tests.signals import sung_tone

RATES = [22050, 44100, 48000, 88200, 96000, 192000]
BLOCKS = [1, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
CHANNELS = [1, 2]
TINY = np.finfo(np.float32).tiny
SETTINGS = dict(transpose=3.0, mix=0.9, output_gain_db=-2.0, speaker="tenor")


def _noise(sr: int, channels: int, n: int, seed: int = 0) -> np.ndarray:
    x = 0.2 * np.random.default_rng(seed).standard_normal((channels, n))
    return x.astype(np.float32)


def _length(sr: int, block: int) -> int:
    return 300 if block == 1 else int(0.02 * sr)


def _block_at(block: int, pos: int) -> int:
    """Block size 1 only for the first 300 samples (then 64: the latency flush stays cheap)."""
    return 64 if block == 1 and pos >= 300 else block


def _stream(effect: VoiceConversion, x: np.ndarray, sr: int, block: int, big_at: int | None = None) -> np.ndarray:
    """x in blocks of ``block`` (one larger block from ``big_at``), reset=False."""
    outs, pos = [], 0
    while pos < x.shape[1]:
        n = _block_at(block, pos) if big_at is None or pos < big_at else max(block, min(8192, 3 * block + 17))
        if big_at is not None and pos >= big_at:
            big_at = None  # only one large block, then back to the small ones
        outs.append(effect.process(x[:, pos:pos + n], sr, buffer_size=block, reset=False))
        pos += n
    return np.concatenate(outs, axis=1)


def _assert_clean(y: np.ndarray) -> None:
    assert np.isfinite(y).all(), "NaN or inf in the output"
    nz = np.abs(y[y != 0])
    assert nz.size == 0 or nz.min() >= TINY, "subnormal output samples"


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("sr", RATES)
def test_matrix(random_model, sr, block, channels):
    fx = VoiceConversion(random_model, **SETTINGS)
    n = _length(sr, block)
    x = _noise(sr, channels, n)
    one = fx.process(x, sr)  # reset=True: aligned, same length
    assert one.shape == x.shape and one.dtype == np.float32
    _assert_clean(one)

    # streamed (and one block larger than any before) == one call, delayed by the reported latency
    L = fx.latency_samples
    padded = np.concatenate([x, np.zeros((channels, L), np.float32)], axis=1)
    streamed = _stream(fx, padded, sr, block, big_at=n // 2)
    _assert_clean(streamed)
    assert streamed.shape == padded.shape
    assert np.abs(streamed[:, :L]).max() == 0.0  # nothing before the latency
    np.testing.assert_allclose(streamed[:, L:], one, atol=2e-5, rtol=0)

    # bypass: transparent, same latency (an impulse comes out exactly L samples later)
    fx.bypass = True
    fx.process(x, sr)  # reset=True: the next reset=False call starts a new stream, bypassed from its start
    # (not reset(): it would also forget the channel count, and a first (2, 1) block reads as mono,
    # exactly as in pedalboard)
    imp = np.zeros((channels, n + L), np.float32)
    imp[:, 3] = 1.0
    imp[:, 4:n] = x[:, 4:]
    by = _stream(fx, imp, sr, block)
    assert np.array_equal(by[:, L:], imp[:, :n]) and not by[:, :L].any()
    fx.bypass = False

    # saved state restored in a fresh instance renders identically
    other = VoiceConversion(random_model)
    other.raw_state = fx.raw_state
    assert other.raw_state == fx.raw_state
    assert np.array_equal(other.process(x, sr), one)


@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("sr", RATES)
def test_automation_every_32_samples(random_model, sr, block, channels):
    """Random targets every 32 samples: finite, and no click bigger than the static renders'."""
    n = _length(sr, block)
    tone = np.tile(sung_tone(sr, n / sr + 0.001)[:n], (channels, 1))
    fx = VoiceConversion(random_model)
    L = fx.latency_at(sr)
    x = np.concatenate([tone, np.zeros((channels, L), np.float32)], axis=1)
    rng = np.random.default_rng(sr + block)
    outs = []
    for s in range(0, x.shape[1], 32):
        fx.transpose = float(rng.uniform(-12, 12))
        fx.mix = float(rng.uniform(0, 1))
        fx.output_gain_db = float(rng.uniform(-12, 6))
        fx.loudness_match = float(rng.uniform(0, 1))
        piece, bs = x[:, s:s + 32], _block_at(block, s)
        for b in range(0, piece.shape[1], bs):
            outs.append(fx.process(piece[:, b:b + bs], sr, buffer_size=bs, reset=False))
    y = np.concatenate(outs, axis=1)[:, L:]
    _assert_clean(y)
    # the steepest step a static render takes, at the loudest settings automation can reach
    assert np.abs(np.diff(y, axis=1)).max() <= 1.5 * _steepest_static_step(random_model, tone, sr) + 1e-3


_STEPS: dict[tuple[int, ...], float] = {}


def _steepest_static_step(model, tone: np.ndarray, sr: int) -> float:
    """The steepest sample-to-sample step of static renders at the loudest automated settings."""
    key = (sr, *tone.shape)
    if key not in _STEPS:
        _STEPS[key] = max(float(np.abs(np.diff(VoiceConversion(model, output_gain_db=6.0, mix=m).process(tone, sr),
                                               axis=1)).max()) for m in (0.0, 1.0))
    return _STEPS[key]


@pytest.mark.parametrize("sr", RATES)
def test_eight_threads_identical(random_model, sr, channels=2):
    x = _noise(sr, channels, int(0.02 * sr), seed=5)
    results: list[np.ndarray | None] = [None] * 8
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            fx = VoiceConversion(random_model, **SETTINGS)
            L = fx.latency_at(sr)
            padded = np.concatenate([x, np.zeros((channels, L), np.float32)], axis=1)
            results[i] = _stream(fx, padded, sr, 512)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for r in results[1:]:
        assert np.array_equal(r, results[0])
