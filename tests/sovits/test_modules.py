"""The inference building blocks against independent references and the spec's numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from svc_dsp.models.sovits.attentions import MultiHeadAttention
from svc_dsp.models.sovits.frames import stretch_units, volume
from svc_dsp.models.sovits.model import fold_weight_norm
from svc_dsp.models.sovits.net import f0_to_coarse
from svc_dsp.models.sovits.nsf_hifigan import sine_source


def _skew_reference(mha: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """VITS relative attention via pad/reshape 'skewing' (the upstream formulation)."""
    w, kc, h = mha.window_size, mha.k_channels, mha.n_heads
    q, k, v = mha.conv_q(x), mha.conv_k(x), mha.conv_v(x)
    b, d, t = k.shape
    q, k, v = (y.view(b, h, kc, t).transpose(2, 3) for y in (q, k, v))
    qs = q / math.sqrt(kc)

    def rel_emb(e: torch.Tensor) -> torch.Tensor:
        pad = max(t - (w + 1), 0)
        start = max((w + 1) - t, 0)
        if pad:
            e = F.pad(e, [0, 0, pad, pad, 0, 0])
        return e[:, start:start + 2 * t - 1]

    rl = torch.matmul(qs, rel_emb(mha.emb_rel_k).unsqueeze(0).transpose(-2, -1))
    rl = F.pad(rl, [0, 1]).reshape(b, h, 2 * t * t)
    rl = F.pad(rl, [0, t - 1]).reshape(b, h, t + 1, 2 * t - 1)[:, :, :t, t - 1:]
    p = torch.softmax(torch.matmul(qs, k.transpose(-2, -1)) + rl, dim=-1)
    out = torch.matmul(p, v)
    pw = F.pad(p, [0, t - 1]).reshape(b, h, t * t + t * (t - 1))
    pw = F.pad(pw, [t, 0]).reshape(b, h, t, 2 * t)[:, :, :, 1:]
    out = out + torch.matmul(pw, rel_emb(mha.emb_rel_v).unsqueeze(0))
    return mha.conv_o(out.transpose(2, 3).reshape(b, d, t))


@pytest.mark.parametrize("t", [1, 3, 5, 6, 40])
def test_relative_attention_matches_vits_skewing(t):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, window_size=4)
    with torch.no_grad():
        mha.emb_rel_k.normal_()
        mha.emb_rel_v.normal_()
        x = torch.randn(1, 16, t)
        ours = mha(x, torch.ones(1, 1, t, t))
        ref = _skew_reference(mha, x)
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()


def test_f0_to_coarse_matches_spec_examples():
    f0 = torch.tensor([0.0, 100.0, 220.0, 440.0, 880.0, 1100.0, 3000.0])
    assert f0_to_coarse(f0).tolist() == [1, 20, 60, 122, 217, 255, 255]


def test_stretch_units_modes():
    u = np.arange(3, dtype=np.float32)[:, None]
    assert stretch_units(u, 7, "nearest")[:, 0].tolist() == [0, 0, 0, 1, 1, 2, 2]
    # "left": boundaries k*7/3 = 0, 2.33, 4.67, 7 -> frames 0-2 unit 0, 3-4 unit 1, 5-6 unit 2
    assert stretch_units(u, 7, "left")[:, 0].tolist() == [0, 0, 0, 1, 1, 2, 2]
    assert stretch_units(u, 6, "left")[:, 0].tolist() == [0, 0, 1, 1, 2, 2]


def test_volume_is_centred_rms():
    hop = 512
    x = np.zeros(hop * 4, np.float32)
    x[hop * 2 - 256: hop * 2 + 256] = 0.5  # exactly frame 2's window
    v = volume(x, hop)
    assert v.shape == (4,)
    assert v[2] == pytest.approx(0.5, abs=1e-6) and v[0] == 0.0


def test_weight_norm_folding_matches_torch():
    conv = torch.nn.utils.weight_norm(torch.nn.Conv1d(4, 6, 3))
    up = torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(6, 4, 8, 4))
    t = {f"c.{k}": v.detach().numpy() for k, v in conv.state_dict().items()}
    t.update({f"u.{k}": v.detach().numpy() for k, v in up.state_dict().items()})
    f = fold_weight_norm(t)
    assert torch.allclose(f["c.weight"], conv.weight, atol=1e-6)
    assert torch.allclose(f["u.weight"], up.weight, atol=1e-6)


def test_sine_source_phase_and_gating():
    sr, n = 44100, 4410
    f0 = torch.full((1, n), 441.0)
    f0[:, n // 2:] = 0.0
    e = sine_source(f0, sr, torch.zeros(1, 9), torch.zeros(1, n, 9))
    k = torch.arange(n // 2, dtype=torch.float64)
    ref = 0.1 * torch.sin(2 * math.pi * 441.0 * (k + 1) / sr)  # phase accumulates from the first sample
    assert torch.allclose(e[0, : n // 2, 0].double(), ref, atol=1e-4)
    assert torch.all(e[0, n // 2:] == 0)  # unvoiced: no sines (and zero noise here)
