"""The fast so-vits decoder (default) equals the exact fp32 torch path within 1e-4, whole and
for a range of frames; FFT convolutions equal direct ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from svc_dsp.models.sovits.fast_decoder import FastDecoder, FftConv1d
from svc_dsp.models.sovits.layout import inference_shapes
from svc_dsp.models.sovits.model import SovitsModel
from tests.sovits.builders import sovits_config


def _model(seed: int = 0, **over: object) -> SovitsModel:
    """A small voice whose decoder has 128/64/32-channel stages (so FFT convolutions are used)."""
    from svc_dsp.models.sovits.layout import normalize_config

    raw = sovits_config(n_speakers=2, upsample_initial_channel=256, **over)
    m = normalize_config(raw)["model"]
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for k, s in inference_shapes(m).items():
        if k.endswith(".gamma"):
            tensors[k] = np.ones(s, np.float32)
        elif k.endswith((".beta", ".bias")):
            tensors[k] = (torch.randn(s, generator=g) * 0.02).numpy()
        elif k.endswith(".weight_g"):
            tensors[k] = (0.3 + torch.rand(s, generator=g) * 0.5).numpy()
        else:
            fan = int(np.prod(s[1:])) if len(s) > 1 else 1
            tensors[k] = (torch.randn(s, generator=g) / max(fan, 1) ** 0.5).numpy()
    cfg = {"family": "sovits", "name": "small", "sample_rate": 44100, "hop_size": 512, "speakers": ["a", "b"],
           "speaker_ids": [0, 1], "f0_range": [50.0, 1100.0], "content_encoder": {"name": "vec768l12", "dim": 768},
           "sovits": {"model": m, "unit_interpolate_mode": "nearest", "speech_encoder": "vec768l12"}}
    return SovitsModel(cfg, tensors, None)


def _features(t: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    units = rng.standard_normal((t, 768)).astype(np.float32)
    f0 = (180.0 * 2 ** (np.cumsum(rng.normal(0, 0.3, t)) / 12)).astype(np.float32)
    uv = (rng.random(t) > 0.15).astype(np.float32)
    return units, f0, uv


@pytest.mark.parametrize("k,d,ch,length", [(11, 5, 64, 1000), (11, 1, 32, 37), (7, 3, 128, 300), (3, 1, 32, 5)])
def test_fft_conv_equals_direct(k, d, ch, length):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(ch, ch, k, dilation=d, padding=(k * d - d) // 2)
    x = torch.randn(1, ch, length)
    with torch.no_grad():
        assert torch.max(torch.abs(FftConv1d(conv)(x) - conv(x))).item() <= 1e-5


def test_fast_equals_exact_and_uses_fft():
    m = _model()
    assert len(m.fast_decoder.convs) > 0  # the 11-tap convolutions of the 32..128-channel stages
    units, f0, uv = _features(40)
    ref = m.synthesize(units, f0, uv, "b", exact=True)
    got = m.synthesize(units, f0, uv, "b")
    assert got.shape == ref.shape == (40 * 512,)
    assert np.sqrt(np.mean(ref ** 2)) > 1e-3  # not silence
    assert np.max(np.abs(got - ref)) <= 1e-4
    mix = np.array([0.3, 0.7], np.float32)
    assert np.max(np.abs(m.synthesize(units, f0, uv, mix) - m.synthesize(units, f0, uv, mix, exact=True))) <= 1e-4


def test_exact_attribute_selects_the_reference_path():
    m = _model()
    units, f0, uv = _features(12)
    m.exact = True
    a = m.synthesize(units, f0, uv, "a")
    assert m._fast is None  # the fast decoder was never built
    assert np.array_equal(a, m.synthesize(units, f0, uv, "a", exact=True))


def test_frames_decode_only_what_is_needed():
    m = _model()
    t = 70
    units, f0, uv = _features(t, seed=2)
    ref = m.synthesize(units, f0, uv, "a", exact=True)
    half = m.fast_decoder.margin_frames
    assert 5 <= half < 40  # derived from the layers
    for a, b in ((30, 40), (0, 8), (60, 70), (0, t)):
        got = m.synthesize(units, f0, uv, "a", frames=(a, b))
        assert got.shape == ((b - a) * 512,)
        assert np.max(np.abs(got - ref[a * 512:b * 512])) <= 1e-4
    ex = m.synthesize(units, f0, uv, "a", frames=(30, 40), exact=True)
    assert np.array_equal(ex, ref[30 * 512:40 * 512])


def test_margin_is_enough_and_not_too_much():
    """Frames just outside the margin do not matter (within 1e-4); the decoder's own output
    changes when its input beyond the receptive field is cut without margin."""
    m = _model()
    dec: FastDecoder = m.fast_decoder
    t = 80
    torch.manual_seed(3)
    z = torch.randn(1, int(m.m["inter_channels"]), t)
    f0 = torch.full((1, t), 200.0)
    g = m.speaker_embedding("a")
    ri, nz = torch.rand(1, 9), torch.randn(1, t * 512, 9)
    full = dec(z, f0, g, ri, nz)
    z2 = z.clone()
    z2[..., : 40 - dec.margin_frames] = 0.0  # change everything outside the margin of frame 40
    z2[..., 41 + dec.margin_frames:] = 0.0
    part = dec(z2, f0, g, ri, nz)
    assert torch.max(torch.abs(full[..., 40 * 512:41 * 512] - part[..., 40 * 512:41 * 512])).item() <= 1e-4
