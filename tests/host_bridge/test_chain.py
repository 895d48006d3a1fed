"""Chain: native pedalboard plugins and our effects in one list; exact with natives only."""
from __future__ import annotations

import numpy as np
import pedalboard as pb
import pytest

from host_bridge.chain import Chain
from host_bridge.effect import VoiceConversion
from svc_dsp.errors import ParameterError
from tests.signals import sung_tone

SR = 44100


def natives():
    """Plugins with state that pedalboard loses on a larger block (Reverb, Delay), modulation
    (Chorus, Phaser), dynamics and filters: all the streaming pitfalls at once."""
    return [pb.HighpassFilter(120), pb.Compressor(threshold_db=-24, ratio=4), pb.Chorus(), pb.Phaser(),
            pb.Delay(delay_seconds=0.03, feedback=0.4, mix=0.3), pb.Reverb(room_size=0.8)]


@pytest.fixture()
def stereo():
    return np.stack([sung_tone(SR, 0.6), sung_tone(SR, 0.6, f0=330, seed=1)])


def _chunks(n: int, seed: int, first: int = 1) -> list[tuple[int, int]]:
    """Random chunk bounds: a tiny first chunk, sizes 1..5000 (each later one may exceed all before)."""
    rng = np.random.default_rng(seed)
    out, pos = [(0, first)], first
    while pos < n:
        k = int(rng.integers(1, 5000))
        out.append((pos, min(n, pos + k)))
        pos += k
    return out


def test_native_only_equals_pedalboard_exactly(stereo):
    ref = pb.Pedalboard(natives())(stereo, SR)
    chain = Chain(natives())
    assert np.array_equal(chain(stereo, SR), ref)
    assert np.array_equal(chain(stereo.T, SR, buffer_size=512), pb.Pedalboard(natives())(stereo.T, SR, 512))
    assert np.array_equal(chain(stereo[0], SR), pb.Pedalboard(natives())(stereo[0], SR))


def test_native_only_streaming_equals_pedalboard_exactly(stereo):
    """Chunks of 1..5000 samples, the first of shape (2, 1): pedalboard itself would read that as
    mono and lose Reverb/Delay state on each larger chunk; the chain must not."""
    ref = pb.Pedalboard(natives())(stereo, SR)
    chain = Chain(natives())
    chain(stereo[:, :100], SR)  # the channel count is known from a previous call
    out = np.concatenate([chain.process(stereo[:, a:b], SR, reset=False) for a, b in _chunks(stereo.shape[1], 1)], 1)
    assert chain.latency_samples == 0
    assert np.array_equal(out, ref)
    chain.reset()  # and again, fresh, in other chunks and the other layout
    out = np.concatenate([chain.process(stereo[:, a:b].T, SR, reset=False)
                          for a, b in _chunks(stereo.shape[1], 2, first=700)], 0)
    assert np.array_equal(out.T, ref)


def test_mixed_chain_streams_like_one_call_delayed_by_summed_latency(random_model, stereo):
    fx = VoiceConversion(random_model, transpose=2.0)
    chain = Chain([pb.HighpassFilter(100), fx, pb.Compressor(threshold_db=-20), pb.Gain(-1.0)])
    one = chain(stereo, SR)
    assert one.shape == stereo.shape and one.dtype == np.float32
    L = chain.latency_samples
    assert L == fx.latency_at(SR) > 0 and chain.stage_latencies() == [0, L, 0]
    padded = np.concatenate([stereo, np.zeros((2, L), np.float32)], axis=1)
    out = np.concatenate([chain.process(padded[:, a:b], SR, reset=False)
                          for a, b in _chunks(padded.shape[1], 3, first=64)], 1)
    assert not out[:, :L].any()
    np.testing.assert_allclose(out[:, L:], one, atol=1e-4)
    # two of our effects: latencies add up
    chain2 = Chain([VoiceConversion(random_model), pb.Reverb(), VoiceConversion(random_model, speaker="tenor")])
    chain2(stereo, SR)
    assert chain2.latency_samples == 2 * L


def test_native_with_latency_is_primed_and_reported(stereo):
    ref = pb.Pedalboard([pb.Resample(target_sample_rate=16000)])(stereo, SR)
    chain = Chain([pb.Resample(target_sample_rate=16000)])
    L = chain.latency_at(SR, 2)
    assert L > chain.max_block_size  # fed fixed blocks: the block plus what the plugin holds back
    padded = np.concatenate([stereo, np.zeros((2, L), np.float32)], axis=1)
    out = np.concatenate([chain.process(padded[:, a:b], SR, reset=False) for a, b in _chunks(padded.shape[1], 4)], 1)
    np.testing.assert_allclose(out[:, L:], ref, atol=3e-3)  # resampler phase, not misalignment


def test_chain_refuses_what_it_cannot_run(random_model):
    with pytest.raises(ParameterError, match="pedalboard plugins and svc-host effects"):
        Chain([pb.Gain(), "reverb"])
    g = pb.Gain()
    with pytest.raises(ParameterError, match="already in this chain"):
        Chain([g, g])
    chain = Chain([pb.Gain()])
    chain.append(VoiceConversion(random_model))
    assert len(chain) == 2 and chain.is_effect and not chain.is_instrument
    assert isinstance(chain[1], VoiceConversion) and "VoiceConversion" in repr(chain)
