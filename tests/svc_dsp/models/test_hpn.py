"""The default family: pieces equal the whole; state carries phase and noise position."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.signals import sung_tone


def _stream(model, x, f0, spk, sizes):
    """Feed hops in the given chunk sizes (in hops); returns the concatenated output."""
    hop, d = model.hop_size, model.net.delay_hops
    n_frames = len(f0)
    total = n_frames + d
    xp = np.zeros(total * hop, np.float32)
    xp[: len(x)] = x
    f0a = np.zeros(total, np.float32)
    f0a[d:] = f0
    st = model.init_state()
    out, s = [], 0
    i = 0
    while s < total:
        k = min(sizes[i % len(sizes)], total - s)
        y, st = model.process_hops(xp[s * hop:(s + k) * hop], f0a[s:s + k], spk, st)
        out.append(y)
        s += k
        i += 1
    return np.concatenate(out)[d * hop: d * hop + len(x)]


@pytest.mark.parametrize("sizes", [[1], [3, 1, 7], [64], [1000]])
def test_pieces_equal_whole(random_model, sizes):
    m = random_model
    x = sung_tone(m.sample_rate, 0.8)
    f0 = np.full(-(-len(x) // m.hop_size), 220.0, np.float32)
    f0[40:60] = 0.0
    spk = m.speaker_weights()
    whole = m.synthesize(x, f0, spk)
    parts = _stream(m, x, f0, spk, sizes)
    assert np.abs(whole - parts).max() < 1e-4
    assert np.isfinite(whole).all() and np.abs(whole).max() > 1e-3


def test_noise_is_seeded_by_absolute_position(random_model):
    synth = random_model.net.synth
    k = 10
    amps = torch.zeros(1, synth.n_harmonics, k)
    noise = torch.full((1, synth.n_bands, k), 0.1)
    f0 = torch.zeros(1, k)
    a, _ = synth(amps, noise, f0, synth.init_state())
    st = synth.init_state()
    b1, st = synth(amps[..., :4], noise[..., :4], f0[:, :4], st)
    b2, _ = synth(amps[..., 4:], noise[..., 4:], f0[:, 4:], st)
    assert torch.allclose(a, torch.cat([b1, b2], -1), atol=1e-6)
    assert a.std() > 0.01


def test_phase_carried_across_calls(random_model):
    synth = random_model.net.synth
    k = 40
    amps = torch.zeros(1, synth.n_harmonics, k)
    amps[:, 0] = 0.5
    noise = torch.zeros(1, synth.n_bands, k)
    f0 = torch.full((1, k), 330.0)
    whole, _ = synth(amps, noise, f0, synth.init_state())
    st = synth.init_state()
    parts = []
    for s in range(0, k, 3):
        y, st = synth(amps[..., s:s + 3], noise[..., s:s + 3], f0[:, s:s + 3], st)
        parts.append(y)
    assert torch.allclose(whole, torch.cat(parts, -1), atol=1e-5)


def test_speaker_mix_blends(random_model):
    m = random_model
    x = sung_tone(m.sample_rate, 0.3)
    f0 = np.full(-(-len(x) // m.hop_size), 220.0, np.float32)
    a = m.synthesize(x, f0, m.speaker_weights("alto"))
    b = m.synthesize(x, f0, m.speaker_weights("tenor"))
    mid = m.synthesize(x, f0, m.speaker_weights(None, {"alto": 1, "tenor": 1}))
    assert np.abs(a - b).max() > 1e-3
    assert np.abs(mid - a).max() > 1e-4 and np.abs(mid - b).max() > 1e-4


def test_lookahead_derived_from_layers(random_model):
    """Changing input after the lookahead leaves earlier output untouched; within it, it changes."""
    m = random_model
    hop = m.hop_size
    x = sung_tone(m.sample_rate, 0.5)
    f0 = np.full(-(-len(x) // hop), 220.0, np.float32)
    spk = m.speaker_weights()
    y0 = m.synthesize(x, f0, spk)
    cut = 40 * hop  # samples from here on change
    x2 = x.copy()
    x2[cut:] = -x2[cut:] * 3
    y2 = m.synthesize(x2, f0, spk)
    lookahead = m.latency_samples() - (hop - 1)  # delay_hops * hop
    # output frame o (samples [o*hop,(o+1)*hop)) needs input below (o+1)*hop + lookahead
    safe_end = cut - lookahead  # samples before this cannot depend on the change
    assert np.abs(y0[:safe_end] - y2[:safe_end]).max() < 1e-6
    assert np.abs(y0[cut - hop:cut + hop] - y2[cut - hop:cut + hop]).max() > 1e-4


def test_envelope_keeps_formants_fixed_across_pitch():
    """'envelope' amplitudes: harmonic k reads the envelope at k*F0 Hz, so a harmonic landing on
    the same frequency at another pitch gets the same amplitude (the formant does not move)."""
    from svc_dsp.models.hpn import build_random

    net = build_random(seed=3).net
    assert net.amp_mode == "envelope"
    E, K = net.n_env, net.n_harmonics
    env = torch.randn(1, E, 1)
    f_low = torch.tensor([[100.0]])
    f_high = torch.tensor([[200.0]])
    k = torch.arange(1, K + 1, dtype=torch.float32)[None, :, None]
    a_low = net._sample_envelope(env, k * f_low[:, None, :])[0, :, 0]
    a_high = net._sample_envelope(env, k * f_high[:, None, :])[0, :, 0]
    # harmonic 2j at 100 Hz sits where harmonic j sits at 200 Hz
    assert torch.allclose(a_low[1::2][: K // 2], a_high[: K // 2], atol=1e-6)
    # at the grid points the envelope is returned exactly; between them it interpolates
    mel_nyq = net.mel_nyquist
    grid_hz = 700.0 * (10.0 ** (torch.linspace(0, mel_nyq, E) / 2595.0) - 1.0)
    on_grid = net._sample_envelope(env, grid_hz[None, :, None])[0, :, 0]
    assert torch.allclose(on_grid, env[0, :, 0], atol=1e-4)
    assert not torch.allclose(a_low, a_high)


def test_legacy_folders_without_amplitudes_key_use_the_distribution():
    """A model.json written before the 'amplitudes' key existed loads as the harmonic distribution."""
    from svc_dsp.models.encoders.causal_mel import CausalMelEncoder
    from svc_dsp.models.hpn import ARCH_DEFAULTS, HpnModel

    arch = {k: v for k, v in ARCH_DEFAULTS.items() if k not in ("amplitudes", "n_envelope")}
    cfg = {"family": "hpn", "family_version": 1, "name": "legacy", "sample_rate": 24000, "hop_size": 120,
           "speakers": ["a"], "f0_range": [50.0, 1100.0], "architecture": arch}
    enc = CausalMelEncoder.random(0)
    m = HpnModel(cfg, enc)
    assert m.net.amp_mode == "distribution"
    assert m.net.head.out_channels == 1 + ARCH_DEFAULTS["n_harmonics"] + ARCH_DEFAULTS["n_noise_bands"]
    with pytest.raises(Exception, match="allowed: envelope, distribution"):
        HpnModel({**cfg, "architecture": {**arch, "amplitudes": "spline"}}, enc)
