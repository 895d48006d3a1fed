"""index_ratio (feature retrieval): the k-NN blend, the index in the model folder, `svc-host train
index`, and the parameter reaching the engine from every entry point."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from svc_dsp.errors import ManifestError, ParameterError
from tests.signals import sung_tone


def test_retrieval_blends_toward_the_nearest_frames():
    import torch

    from svc_dsp.models.retrieval import FeatureIndex

    rng = np.random.default_rng(0)
    bank = rng.standard_normal((50, 4)).astype(np.float32)
    idx = FeatureIndex({"a": bank, "b": bank + 10.0}, k=4)
    u = bank[[3, 7]] + 1e-4
    out = idx.apply_np(u, np.array([1.0, 0.0]), ["a", "b"], 1.0)
    np.testing.assert_allclose(out, bank[[3, 7]], atol=1e-3)  # a frame next to a bank frame lands on it
    np.testing.assert_array_equal(idx.apply_np(u, np.array([1.0, 0.0]), ["a", "b"], 0.0), u)
    half = idx.apply_np(u, np.array([1.0, 0.0]), ["a", "b"], 0.5)
    np.testing.assert_allclose(half, 0.5 * u + 0.5 * out, atol=1e-5)
    # a 50/50 speaker mix takes half of each speaker's retrieved frames
    mix = idx.apply_np(u, np.array([0.5, 0.5]), ["a", "b"], 1.0)
    nb = idx.nearest_mean(torch.from_numpy(u), "b").numpy()
    np.testing.assert_allclose(mix, 0.5 * out + 0.5 * nb, atol=1e-4)
    # a speaker without a bank keeps its frames
    np.testing.assert_allclose(idx.apply_np(u, np.array([0.0, 1.0]), ["a", "c"], 1.0), u)


def _index_model(random_model_dir: Path, tmp_path: Path) -> Path:
    """A copy of the random hpn voice with an index from random units (its encoder's dim)."""
    from svc_dsp.models.catalog import load_model
    from svc_dsp.models.retrieval import write_index

    folder = tmp_path / "voice"
    shutil.copytree(random_model_dir, folder)
    m = load_model(folder)
    assert m.feature_index is None
    rng = np.random.default_rng(1)
    banks = {s: rng.random((300, m.encoder.dim)).astype(np.float32) for s in m.speakers}
    write_index(folder, banks, {"test": "1"})
    return folder


def test_index_is_part_of_the_folder_and_checked(random_model_dir, tmp_path):
    from svc_dsp.models.catalog import load_model

    folder = _index_model(random_model_dir, tmp_path)
    m = load_model(folder)
    assert m.feature_index is not None and sorted(m.feature_index.units) == sorted(m.speakers)
    assert "index.safetensors" in (folder / "SHA256SUMS").read_text()
    data = (folder / "index.safetensors").read_bytes()
    (folder / "index.safetensors").write_bytes(data[:-64])
    with pytest.raises(ManifestError):
        load_model(folder)


@pytest.fixture()
def spy(monkeypatch):
    from svc_dsp.models.retrieval import FeatureIndex

    seen: list[float] = []
    orig = FeatureIndex.apply

    def apply(self, units, weights, speakers, ratio):  # noqa: ANN001
        seen.append(round(float(ratio), 6))
        return orig(self, units, weights, speakers, ratio)

    monkeypatch.setattr(FeatureIndex, "apply", apply)
    return seen


def test_index_ratio_reaches_the_engine_from_every_entry_point(random_model_dir, tmp_path, spy, monkeypatch):
    import soundfile as sf

    from host_bridge.cli import main
    from host_bridge.effect import VoiceConversion
    from svc_dsp.engine.converter import Converter
    from svc_dsp.engine.streaming import StreamingConverter
    from svc_dsp.models.catalog import load_model

    folder = _index_model(random_model_dir, tmp_path)
    m = load_model(folder)
    x = sung_tone(m.sample_rate, 0.5)
    plain = Converter(m).convert(x, m.sample_rate)
    assert spy == []  # 0 = off: retrieval never runs
    y = Converter(m, index_ratio=0.7).convert(x, m.sample_rate)
    assert spy and set(spy) == {0.7} and not np.allclose(y, plain)
    spy.clear()
    sc = StreamingConverter(m, m.sample_rate, 1024, index_ratio=0.3)
    sc.process(x[:1024])
    sc.set("index_ratio", 0.9)
    sc.process(x[1024:2048])
    assert 0.3 in spy and spy[-1] == 0.9
    spy.clear()
    fx = VoiceConversion(str(folder), index_ratio=0.4)
    fx(np.stack([x, x]), m.sample_rate)
    assert spy and set(spy) == {0.4}
    spy.clear()
    sf.write(tmp_path / "in.wav", x, m.sample_rate)
    assert main(["render", str(tmp_path / "in.wav"), "-o", str(tmp_path / "out"), "--model", str(folder),
                 "--index-ratio", "0.6", "-q"]) == 0
    assert spy and set(spy) == {0.6}
    with pytest.raises(ParameterError, match="index_ratio"):
        Converter(m, index_ratio=1.5)


def test_onnx_backend_refuses_retrieval_it_cannot_run(random_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from svc_dsp.engine.streaming import StreamingConverter, resolve_backend
    from svc_dsp.models.catalog import load_model

    m = load_model(_index_model(random_model_dir, tmp_path))
    assert resolve_backend(m, "auto") == "torch"
    sc = StreamingConverter(m, m.sample_rate, 4096, backend="onnx", index_ratio=0.5)
    with pytest.raises(ParameterError, match="torch backend"):
        sc.process(sung_tone(m.sample_rate, 0.1))


def test_train_index_builds_from_extracted_features(random_model_dir, tmp_path, capsys):
    from svc_dsp.models.catalog import load_model
    from training.cli import main as train_main

    folder = tmp_path / "voice"
    shutil.copytree(random_model_dir, folder)
    m = load_model(folder)
    cfg = json.loads((folder / "model.json").read_text())
    prep = tmp_path / "prep"
    rng = np.random.default_rng(2)
    for s in m.speakers:
        (prep / "features" / s).mkdir(parents=True)
        for i in range(3):
            np.savez(prep / "features" / s / f"{i:05d}.npz", units=rng.random((40, m.encoder.dim)).astype(np.float32))
    meta = {"encoder": {"sha256": cfg["content_encoder"].get("sha256", "x")}}
    (prep / "features" / "features.json").write_text(json.dumps(meta))
    assert train_main(["index", str(folder), str(prep), "--max-frames", "100"]) == 0
    idx = load_model(folder).feature_index
    assert idx is not None and all(u.shape == (100, m.encoder.dim) for u in idx.units.values())
    assert train_main(["index", str(folder), str(prep)]) == 2  # exists: needs --overwrite
    assert "--overwrite" in capsys.readouterr().err
    meta["encoder"]["sha256"] = "0" * 64
    (prep / "features" / "features.json").write_text(json.dumps(meta))
    if cfg["content_encoder"].get("sha256"):
        assert train_main(["index", str(folder), str(prep), "--overwrite"]) == 2
        assert "trained with" in capsys.readouterr().err


def test_train_features_refuses_an_encoder_kind_no_family_trains(tmp_path, monkeypatch):
    """causal-mel (hpn) and whisper (hpnw) train; any other kind (a HuBERT/ContentVec encoder that
    serves imported so-vits voices) is refused in one line naming the kinds that train."""
    import training.features as tf
    from svc_dsp.errors import TrainingError

    (tmp_path / "prepare.json").write_text(json.dumps({"sample_rate": 24000}))
    real = tf.encoder_reference

    def as_hubert(folder):
        return {**real(folder), "kind": "hubert", "name": "contentvec"}

    monkeypatch.setattr(tf, "encoder_reference", as_hubert)
    with pytest.raises(TrainingError, match="kind 'hubert'.*causal-mel or whisper"):
        tf.extract_features(tmp_path, encoder_folder_or_name="whisper-base-l4", f0_method="yin")
