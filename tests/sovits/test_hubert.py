"""ContentVec/HuBERT: a fairseq-layout checkpoint with random weights and pickled config objects
imports through the restricted subprocess unpickler and encodes 16 kHz audio at 50 frames/s."""
from __future__ import annotations

import argparse
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch

from host_bridge.importers.encoder import import_encoder
from svc_dsp.models.encoders.registry import load_content_encoder
from svc_dsp.models.encoders.hubert import expected_shapes, n_units


def _fake_omegaconf_module() -> types.ModuleType:
    mod = types.ModuleType("omegaconf.dictconfig")

    class DictConfig(dict):
        def __reduce__(self):
            return (DictConfig, (dict(self),))

    DictConfig.__module__, DictConfig.__qualname__ = "omegaconf.dictconfig", "DictConfig"
    mod.DictConfig = DictConfig
    return mod


@pytest.fixture(scope="module")
def contentvec_checkpoint(tmp_path_factory):
    """checkpoint_best_legacy_500.pt look-alike: fairseq keys, random fp16 weights, args + cfg objects."""
    mod = _fake_omegaconf_module()
    pkg = types.ModuleType("omegaconf")
    pkg.dictconfig = mod
    saved = {k: sys.modules.get(k) for k in ("omegaconf", "omegaconf.dictconfig")}
    sys.modules["omegaconf"], sys.modules["omegaconf.dictconfig"] = pkg, mod
    try:
        g = torch.Generator().manual_seed(0)
        sd = OrderedDict(mask_emb=torch.zeros(768))
        for k, shape in expected_shapes(12, True).items():
            if k.endswith("weight_g"):
                t = torch.full(shape, 2.0)
            elif "norm" in k and k.endswith("weight") or k.endswith("conv_layers.0.2.weight"):
                t = torch.ones(shape)
            elif k.endswith("bias"):
                t = torch.zeros(shape)
            else:
                t = torch.randn(shape, generator=g) / np.sqrt(np.prod(shape[1:]))
            sd[k] = t.half()
        sd["label_embs_concat"] = torch.zeros(504, 256).half()
        ckpt = {"args": argparse.Namespace(encoder_layers=12, label_rate=50),
                "cfg": mod.DictConfig({"model": {"_name": "hubert"}, "task": {"_name": "hubert_pretraining"}}),
                "model": sd, "optimizer_history": [{"criterion_name": "HubertCriterion", "num_updates": 1}],
                "extra_state": {"best": np.float64(0.5)}}
        path = tmp_path_factory.mktemp("cv") / "checkpoint_best_legacy_500.pt"
        torch.save(ckpt, path)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return path


@pytest.mark.parametrize("layout,dim", [("vec768l12", 768), ("vec256l9", 256)])
def test_contentvec_import_and_encode(contentvec_checkpoint, tmp_path, layout, dim):
    folder, notes = import_encoder(contentvec_checkpoint, tmp_path / layout, layout=layout)
    assert any("never executed" in n for n in notes)
    enc = load_content_encoder(folder)
    assert enc.kind == "hubert" and enc.dim == dim and enc.frame_seconds == 0.02
    x = (0.1 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype(np.float32)
    u = enc.encode(x, 16000)
    assert u.shape == (49, dim) == (n_units(16000), dim)  # 50 frames/s (spec: 1 s -> 49 units)
    assert np.isfinite(u).all() and u.std() > 0
