"""svc-host merge / compress: ordinary model folders, written atomically."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from host_bridge.cli import main
from host_bridge.model_tools import ModelToolError, compress_model, merge_models
from svc_dsp.models.catalog import load_model
from svc_dsp.models.folder import load_tensors, verify_manifest


def _tensors(folder):
    return load_tensors(folder / "model.safetensors")


def test_merge_of_a_voice_with_itself_is_that_voice(random_model_dir, tmp_path):
    out = merge_models([random_model_dir, random_model_dir], tmp_path / "aa", "0.3")
    a, m = _tensors(random_model_dir), _tensors(out)
    assert set(a) == set(m)
    for k in a:
        assert m[k].dtype == a[k].dtype and np.array_equal(m[k], a[k]), k
    verify_manifest(out)
    cfg = json.loads((out / "model.json").read_text())
    assert cfg["name"] == "aa" and [x["weight"] for x in cfg["merged_from"]] == pytest.approx([0.3, 0.7])
    load_model(out)                     # an ordinary folder the engine loads (bundled encoder copied)


def test_merge_weights_and_refusals(random_model_dir, tmp_path):
    from safetensors.numpy import save_file

    from svc_dsp.models.folder import sha256_file

    b_dir = tmp_path / "b"                  # the same voice with other weights (same encoder)
    shutil.copytree(random_model_dir, b_dir)
    rng = np.random.default_rng(2)
    tb = {k: (v + rng.standard_normal(v.shape).astype(v.dtype) if v.dtype.kind == "f" else v)
          for k, v in _tensors(b_dir).items()}
    save_file(tb, str(b_dir / "model.safetensors"))
    (b_dir / "SHA256SUMS").write_text("".join(f"{sha256_file(b_dir / n)}  {n}\n" for n in ("model.json", "model.safetensors")))
    out = merge_models([random_model_dir, b_dir], tmp_path / "ab", "0.25")
    a, b, m = _tensors(random_model_dir), _tensors(b_dir), _tensors(out)
    k = next(k for k in a if a[k].dtype.kind == "f" and not np.array_equal(a[k], b[k]))
    np.testing.assert_allclose(m[k], 0.25 * a[k] + 0.75 * b[k], rtol=1e-6, atol=1e-7)
    with pytest.raises(ModelToolError, match="differs|shape"):
        merge_models([random_model_dir, "demo"], tmp_path / "bad")
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad*"))
    with pytest.raises(ModelToolError, match="--ratio"):
        merge_models([random_model_dir, b_dir], tmp_path / "r", "1.5")
    with pytest.raises(ModelToolError, match="one of the inputs"):
        merge_models([random_model_dir, b_dir], b_dir, overwrite=True)


def test_cli_merge_refusal_is_one_line(random_model_dir, tmp_path, capsys):
    rc = main(["merge", str(random_model_dir), "demo", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "cannot merge" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("dtype,tol", [("float16", 2 ** -11), ("bfloat16", 2 ** -8)])
def test_compress_round_trip_within_half_precision(random_model_dir, tmp_path, dtype, tol):
    out = compress_model(random_model_dir, tmp_path / f"c-{dtype}", dtype=dtype)
    a, c = _tensors(random_model_dir), _tensors(out)
    assert (out / "model.safetensors").stat().st_size < 0.6 * (random_model_dir / "model.safetensors").stat().st_size
    for k in a:
        if a[k].dtype.kind == "f":
            assert c[k].dtype == np.float32
            np.testing.assert_allclose(c[k], a[k], rtol=tol, atol=1e-6 if dtype == "float16" else 1e-4)
    m0, m1 = load_model(random_model_dir), load_model(out)
    from svc_dsp.engine.converter import Converter

    sr = 24000
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(sr // 2) / sr)).astype(np.float32)
    y0, y1 = Converter(m0).convert(x, sr), Converter(m1).convert(x, sr)
    assert np.sqrt(np.mean((y1 - y0) ** 2)) < 0.05 * (np.sqrt(np.mean(y0 ** 2)) + 1e-3)


def test_compress_drops_training_only_tensors(random_model_dir, tmp_path):
    from safetensors.numpy import save_file

    from svc_dsp.models.folder import sha256_file

    src = tmp_path / "sv"
    shutil.copytree(random_model_dir, src)
    cfg = json.loads((src / "model.json").read_text())
    cfg["family"] = "sovits"                 # only the key list matters to compress
    (src / "model.json").write_text(json.dumps(cfg))
    t = _tensors(src)
    t["enc_q.proj.weight"] = np.ones((4, 4), np.float32)
    save_file(t, str(src / "model.safetensors"))
    (src / "SHA256SUMS").write_text("".join(f"{sha256_file(src / n)}  {n}\n" for n in ("model.json", "model.safetensors")))
    out = compress_model(src, tmp_path / "svc")
    assert "enc_q.proj.weight" not in _tensors(out)
    assert json.loads((out / "model.json").read_text())["compressed"]["dropped_tensors"] == 1
