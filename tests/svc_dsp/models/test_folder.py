"""Model folders: manifest, shapes, pickles, encoder mismatch — each refused with a named message."""
from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from svc_dsp.errors import (EncoderMismatchError, ManifestError, ModelFormatError, PickleRefusedError,
                            WeightMismatchError)
from svc_dsp.models.catalog import load_model
from svc_dsp.models.folder import MANIFEST_NAME, sha256_file


def _copy(src, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(src, d)
    return d


def _rehash(d):
    names = sorted(p.name for p in d.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    (d / MANIFEST_NAME).write_text("".join(f"{sha256_file(d / n)}  {n}\n" for n in names))


def test_loads_and_reports_latency(random_model_dir):
    m = load_model(random_model_dir)
    assert m.family == "hpn" and m.speakers == ["alto", "tenor"]
    # (1 window-lookahead hop + 1 encoder delay hop) * hop + hop - 1
    assert m.latency_samples() == 3 * m.hop_size - 1


def test_wrong_shape_names_the_tensor(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    t = load_file(str(d / "model.safetensors"))
    t["head.bias"] = np.zeros(5, np.float32)
    save_file(t, str(d / "model.safetensors"))
    _rehash(d)
    with pytest.raises(WeightMismatchError, match=r"head\.bias.*\(5,\)"):
        load_model(d)


def test_missing_tensor_named(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    t = load_file(str(d / "model.safetensors"))
    del t["spk_table"]
    save_file(t, str(d / "model.safetensors"))
    _rehash(d)
    with pytest.raises(WeightMismatchError, match="spk_table.*missing"):
        load_model(d)


def test_pickle_renamed_to_safetensors_is_refused(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    (d / "model.safetensors").write_bytes(pickle.dumps({"weight": [1, 2, 3]}, protocol=2))
    _rehash(d)
    with pytest.raises(PickleRefusedError, match="import sovits"):
        load_model(d)


def test_torch_zip_checkpoint_refused(random_model_dir, tmp_path):
    import torch

    d = _copy(random_model_dir, tmp_path)
    torch.save({"w": torch.zeros(2)}, d / "model.safetensors")
    _rehash(d)
    with pytest.raises(PickleRefusedError):
        load_model(d)


def test_manifest_mismatch_and_missing(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    cfg = json.loads((d / "model.json").read_text())
    cfg["name"] = "edited"
    (d / "model.json").write_text(json.dumps(cfg))
    with pytest.raises(ManifestError, match="model.json.*sha256"):
        load_model(d)
    (d / MANIFEST_NAME).unlink()
    with pytest.raises(ManifestError, match="no SHA256SUMS"):
        load_model(d)


def test_unknown_family_and_not_a_folder(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    cfg = json.loads((d / "model.json").read_text())
    cfg["family"] = "nope"
    (d / "model.json").write_text(json.dumps(cfg))
    _rehash(d)
    with pytest.raises(ModelFormatError, match="family 'nope' is unknown; known families: .*hpn"):
        load_model(d)
    with pytest.raises(ModelFormatError, match="does-not-exist' does not exist"):
        load_model(str(tmp_path / "does-not-exist"))
    with pytest.raises(Exception, match="no model named 'nosuchvoice'"):
        load_model("nosuchvoice")


def test_encoder_dimension_mismatch_named(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    cfg = json.loads((d / "model.json").read_text())
    cfg["content_encoder"]["dim"] = 768
    (d / "model.json").write_text(json.dumps(cfg))
    _rehash(d)
    with pytest.raises(EncoderMismatchError, match=r"768-dim content units.*gives 64"):
        load_model(d)


def test_encoder_of_another_training_refused(random_model_dir, tmp_path):
    from svc_dsp.models.encoders.causal_mel import CausalMelEncoder
    from svc_dsp.models.folder import write_model_folder

    d = _copy(random_model_dir, tmp_path)
    other = CausalMelEncoder.random(seed=99)
    shutil.rmtree(d / "encoder")
    write_model_folder(d / "encoder", {k: v for k, v in other.config.items()},
                       {"encoder.safetensors": other.tensors()})
    with pytest.raises(EncoderMismatchError, match="trained with content encoder"):
        load_model(d)
