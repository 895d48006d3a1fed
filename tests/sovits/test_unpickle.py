"""The restricted unpickler (run in its subprocess): data comes back, code never runs."""
from __future__ import annotations

import argparse
import builtins
import os
import sys
import types
from collections import OrderedDict

import numpy as np
import pytest
import torch

from host_bridge.importers.worker_client import unpickle_in_subprocess
from svc_dsp.errors import PickleRefusedError


class _SystemPayload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ExecPayload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("payload", [_SystemPayload, _ExecPayload])
def test_code_payload_is_refused_and_never_runs(tmp_path, payload):
    marker = tmp_path / "PWNED"
    path = tmp_path / "G_evil.pth"
    torch.save({"model": OrderedDict(w=torch.ones(2)), "x": payload(str(marker))}, path)
    with pytest.raises(PickleRefusedError) as e:
        unpickle_in_subprocess(path, select="model")
    assert ("system" in str(e.value)) or ("exec" in str(e.value))
    assert "nothing was executed" in str(e.value)
    assert not marker.exists()


def test_tensors_dtypes_and_views_round_trip(tmp_path):
    base = torch.randn(6, 4)
    sd = OrderedDict(a=torch.randn(3, 5), t=base.t(), s=base[2:, 1:3], h=torch.randn(7).half(),
                     bf=torch.randn(3, 2).bfloat16(), i=torch.arange(4), b=torch.tensor([True, False]))
    path = tmp_path / "x.pth"
    torch.save({"model": sd, "iteration": 3, "learning_rate": 1e-4}, path)
    r = unpickle_in_subprocess(path, select="model")
    for k, v in sd.items():
        assert r.tensors[k].shape == tuple(v.shape)
        assert np.array_equal(r.tensors[k].astype(np.float64), v.double().numpy()), k
    assert r.meta["iteration"] == 3 and r.meta["learning_rate"] == 1e-4
    assert r.tensors["h"].dtype == np.float16


def _fake_omegaconf() -> types.ModuleType:
    """A stand-in 'omegaconf.dictconfig' module, only in this process (the worker has none)."""
    pkg = types.ModuleType("omegaconf")
    mod = types.ModuleType("omegaconf.dictconfig")

    class DictConfig:
        def __init__(self, content):
            self._content = content

        def __reduce__(self):
            return (DictConfig, (self._content,))

    DictConfig.__module__ = "omegaconf.dictconfig"
    DictConfig.__qualname__ = "DictConfig"
    mod.DictConfig = DictConfig
    pkg.dictconfig = mod
    return pkg


def test_fairseq_config_objects_become_placeholders(tmp_path, monkeypatch):
    pkg = _fake_omegaconf()
    monkeypatch.setitem(sys.modules, "omegaconf", pkg)
    monkeypatch.setitem(sys.modules, "omegaconf.dictconfig", pkg.dictconfig)
    path = tmp_path / "ckpt.pt"
    ckpt = {"args": argparse.Namespace(encoder_layers=12, label_rate=50),
            "cfg": pkg.dictconfig.DictConfig({"model": {"_name": "hubert"}}),
            "model": OrderedDict(w=torch.ones(2, 2)), "extra_state": {"best": np.float64(1.5)}}
    torch.save(ckpt, path)
    with pytest.raises(PickleRefusedError):  # not allowed for so-vits voices
        unpickle_in_subprocess(path, select="model")
    r = unpickle_in_subprocess(path, select="model", allow_numpy=True, allow_config_objects=True)
    assert np.array_equal(r.tensors["w"], np.ones((2, 2), np.float32))
    assert set(r.skipped) == {"argparse.Namespace", "omegaconf.dictconfig.DictConfig"}
    assert r.meta["args"] == {"__skipped__": "argparse.Namespace"}
    assert r.meta["extra_state"]["best"] == 1.5


def test_numpy_arrays_for_kmeans(tmp_path):
    path = tmp_path / "kmeans_10000.pt"
    centres = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    torch.save({"alto": {"n_features_in_": 3, "_n_threads": 4, "cluster_centers_": centres}}, path)
    r = unpickle_in_subprocess(path, allow_numpy=True)
    assert np.array_equal(r.tensors["alto/cluster_centers_"], centres)
    assert r.meta["alto"]["n_features_in_"] == 3
