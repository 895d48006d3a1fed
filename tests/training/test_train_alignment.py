"""The training frame path (cached features -> decoder -> synth) equals the engine's streaming
``synthesize`` once the decoder's receptive field is filled: what is trained is what runs."""
from __future__ import annotations

import numpy as np
import torch

from tests.signals import sung_tone


def test_frame_path_matches_synthesize_after_the_receptive_field() -> None:
    from svc_dsp.models.hpn import build_random
    from training.fit import _Decoder

    model = build_random(seed=1, speakers=["a", "b"], channels=32, dilations=[1, 2, 4])
    net = model.net
    with torch.no_grad():
        net.synth.tables_t.zero_()  # noise is read at absolute sample positions: compare the harmonics
    sr, hop = model.sample_rate, model.hop_size
    audio = sung_tone(sr, 1.0)
    n_frames = -(-audio.shape[0] // hop)
    f0 = (200.0 + 40.0 * np.sin(np.arange(n_frames) / 15.0)).astype(np.float32)
    f0[60:70] = 0.0
    spk = np.array([0.3, 0.7], np.float32)
    ref = model.synthesize(audio, f0, spk)
    units, energy = model.encoder.encode_with_energy(audio, sr)
    dec = _Decoder.module(net)
    with torch.no_grad():
        wave = dec(torch.from_numpy(units.T[None].copy()), torch.from_numpy(f0[None]),
                   torch.from_numpy(energy[None, None].copy()),
                   torch.from_numpy(np.repeat(spk[:, None], n_frames, axis=1)[None]))[0].numpy()
    skip = (net.stack.receptive_field + net.conv_in.pad + net.delay_hops + 2) * hop
    np.testing.assert_allclose(wave[skip:audio.shape[0]], ref[skip:], atol=2e-5)
    assert np.abs(ref[skip:]).max() > 1e-3

