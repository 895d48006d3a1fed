"""so-vits-svc voices in every variant: built as real .pth pickles, imported through the
subprocess importer, loaded by the catalog and rendered through Converter."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from host_bridge.importers.sovits import import_sovits
from svc_dsp.engine.converter import Converter
from svc_dsp.errors import EncoderMismatchError, ModelFormatError, WeightMismatchError
from svc_dsp.models.catalog import load_model
from svc_dsp.models.sovits.layout import MODEL_DEFAULTS, sovits_state_shapes
from tests.sovits.builders import sovits_config, write_voice

SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "specs"

VARIANTS = {
    "vec768l12_3spk": dict(encoder="vec768l12", n_speakers=3, spk={"alto": 0, "tenor": 2, "bass": 1}),
    "vec256l9_vol": dict(encoder="vec256l9", vol_embedding=True),
    "tiny_shared": dict(use_depthwise_conv=True, flow_share_parameter=True),
    "tf_flow_shared": dict(use_transformer_flow=True, flow_share_parameter=True),
    "no_auto_f0": dict(use_automatic_f0_prediction=False),
}


def _read_listing(name: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in (SPECS / name).read_text().splitlines():
        if line and not line.startswith("#"):
            k, shape = line.split(" ", 1)
            out[k] = tuple(int(v) for v in re.findall(r"\d+", shape))
    return out


@pytest.mark.parametrize("listing,overrides", [
    ("sovits-keys-vec768l12.txt", {}),
    ("sovits-keys-tiny.txt", dict(filter_channels=512, upsample_initial_channel=400, use_depthwise_conv=True,
                                  flow_share_parameter=True)),
    ("sovits-keys-tfflow.txt", dict(use_transformer_flow=True, flow_share_parameter=True)),
])
def test_full_size_layout_matches_spec_listing(listing, overrides):
    if not (SPECS / listing).is_file():
        pytest.skip("spec listings not available")
    ref = _read_listing(listing)
    got = sovits_state_shapes({**MODEL_DEFAULTS, **overrides})
    assert list(got.items()) == list(ref.items())


@pytest.fixture(scope="module")
def imported(sovits_catalog, tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("voices")
    out = {}
    for i, (name, kw) in enumerate(VARIANTS.items()):
        pth, cj = write_voice(d / "src", name, sovits_config(**kw), seed=i)
        out[name], _ = import_sovits(pth, cj, d / name)
    return out


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_imports_and_renders(imported, voice_audio, name):
    x, sr = voice_audio
    m = load_model(imported[name])
    assert m.regime == "windowed" and m.latency_samples() == 0
    y = Converter(m, f0_method="harvest").convert(x, sr)
    assert y.shape == x.shape and y.dtype == np.float32 and np.isfinite(y).all()
    assert np.sqrt(np.mean(y ** 2)) > 1e-3
    y2 = Converter(m, f0_method="harvest").convert(x, sr)
    assert np.array_equal(y, y2)  # seeded: identical renders every time


def test_speakers_follow_config_ids_and_change_output(imported, voice_audio):
    x, sr = voice_audio
    m = load_model(imported["vec768l12_3spk"])
    assert m.speakers == ["alto", "bass", "tenor"] and m.speaker_ids == [0, 1, 2]
    a = Converter(m, speaker="alto", f0_method="dio", gate_db=-120).convert(x, sr)
    b = Converter(m, speaker="tenor", f0_method="dio", gate_db=-120).convert(x, sr)
    mix = Converter(m, speaker_mix={"alto": 0.5, "tenor": 0.5}, f0_method="dio", gate_db=-120).convert(x, sr)
    assert not np.allclose(a, b) and not np.allclose(mix, a) and not np.allclose(mix, b)


def test_synthesize_dynamic_speaker_mix_and_seed(imported):
    m = load_model(imported["vec768l12_3spk"])
    t = 20
    units = np.random.default_rng(0).standard_normal((t, 768)).astype(np.float32)
    f0, uv = np.full(t, 220.0, np.float32), np.ones(t, np.float32)
    one = m.synthesize(units, f0, uv, "alto")
    same = m.synthesize(units, f0, uv, np.array([1.0, 0.0, 0.0]))
    per_frame = m.synthesize(units, f0, uv, np.tile(np.array([[1.0], [0.0], [0.0]], np.float32), (1, t)))
    assert one.shape == (t * 512,) and np.array_equal(one, same)
    assert np.allclose(one, per_frame, atol=1e-5)
    assert not np.array_equal(one, m.synthesize(units, f0, uv, "alto", seed=1))
    auto = m.synthesize(units, f0, uv, "alto", predict_f0=True)
    assert np.isfinite(auto).all()


def test_shape_mismatch_names_the_first_tensor(sovits_catalog, tmp_path):
    pth, _ = write_voice(tmp_path, "a", sovits_config(n_speakers=2))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(sovits_config(n_speakers=3)))
    with pytest.raises(WeightMismatchError, match=r"emb_g\.weight.*\(2, 768\).*\(3, 768\)"):
        import_sovits(pth, wrong, tmp_path / "out")
    vol = tmp_path / "vol.json"
    vol.write_text(json.dumps(sovits_config(n_speakers=2, vol_embedding=True)))
    with pytest.raises(WeightMismatchError, match="emb_vol.weight.*missing"):
        import_sovits(pth, vol, tmp_path / "out2")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_40_config_fork_config_release_and_fp16(sovits_catalog, tmp_path, voice_audio):
    x, sr = voice_audio
    cfg40 = sovits_config(encoder="vec256l9", version="4.0")
    pth, cj = write_voice(tmp_path, "v40", cfg40, release=True, half=True)
    folder, notes = import_sovits(pth, cj, tmp_path / "v40")
    mc = json.loads((folder / "model.json").read_text())
    assert mc["content_encoder"] == {"name": "vec256l9", "dim": 256}
    assert mc["sovits"]["unit_interpolate_mode"] == "left" and mc["sovits"]["flavour"] == "so-vits-svc 4.0"
    assert any("fp16" in n for n in notes) and any("without enc_q" in n for n in notes)
    y = Converter(load_model(folder), f0_method="dio").convert(x, sr)
    assert np.isfinite(y).all()
    fork = sovits_config(encoder="vec768l12", version="fork", gin_channels=256)
    pth, cj = write_voice(tmp_path, "fork", fork)
    folder, _ = import_sovits(pth, cj, tmp_path / "fork")
    mc = json.loads((folder / "model.json").read_text())
    assert mc["sovits"]["speech_encoder"] == "vec768l12" and mc["sovits"]["unit_interpolate_mode"] == "nearest"
    assert np.isfinite(Converter(load_model(folder), f0_method="dio").convert(x, sr)).all()


def test_full_size_fp16_release_imports(sovits_catalog, tmp_path):
    """A default-size (52 M) voice, compressed like compress_model.py -hf: imports and loads."""
    cfg = sovits_config(small=False)
    pth, cj = write_voice(tmp_path, "full", cfg, release=True, half=True)
    folder, _ = import_sovits(pth, cj, tmp_path / "full")
    m = load_model(folder)
    n = sum(p.numel() for p in m.net.parameters())
    assert 39_000_000 < n < 41_000_000  # 40.18 M inference elements (spec §2.5)


def test_encoder_dimension_mismatch_is_named_at_load(sovits_catalog, tmp_path):
    pth, cj = write_voice(tmp_path, "a", sovits_config(encoder="vec256l9"))
    folder, _ = import_sovits(pth, cj, tmp_path / "v")
    cfg = json.loads((folder / "model.json").read_text())
    cfg["content_encoder"]["name"] = "vec768l12"  # the wrong encoder for a 256-d voice
    from svc_dsp.models.folder import load_tensors, write_model_folder
    bad = write_model_folder(tmp_path / "bad", {k: v for k, v in cfg.items() if not k.startswith("format")},
                             {"model.safetensors": load_tensors(folder / "model.safetensors")})
    with pytest.raises(EncoderMismatchError, match="expects 256-dim content units.*gives 768"):
        load_model(bad)


def test_unsupported_configs_are_refused(tmp_path):
    pth, _ = write_voice(tmp_path, "a", sovits_config())
    istft = sovits_config(version="fork")
    istft["model"]["type_"] = "mb-istft"
    for cfg, pat in ((sovits_config(vocoder_name="nsf-snake-hifigan"), "snake"), (istft, "type_"),
                     (sovits_config(speech_encoder="vec256l9"), "ssl_dim")):
        cj = tmp_path / "c.json"
        cj.write_text(json.dumps(cfg))
        with pytest.raises(ModelFormatError, match=pat):
            import_sovits(pth, cj, tmp_path / "o")


def test_kmeans_cluster_file_imports(sovits_catalog, tmp_path):
    import torch

    pth, cj = write_voice(tmp_path, "a", sovits_config(spk={"alto": 0}))
    km = tmp_path / "kmeans_10000.pt"
    torch.save({"alto": {"n_features_in_": 768, "_n_threads": 4,
                         "cluster_centers_": np.zeros((10, 768), np.float32)}}, km)
    folder, notes = import_sovits(pth, cj, tmp_path / "v", cluster=km)
    assert (folder / "cluster.safetensors").is_file() and any("alto" in n for n in notes)
    m = load_model(folder)
    u = np.ones((4, 768), np.float32)
    assert np.allclose(m.apply_cluster(u, "alto", 0.25), 0.75)


def test_cli_subcommands(sovits_catalog, tmp_path):
    import argparse

    from host_bridge.importers.cli import add_import_subcommands

    ap = argparse.ArgumentParser()
    add_import_subcommands(ap.add_subparsers(dest="what"))
    pth, cj = write_voice(tmp_path, "a", sovits_config())
    args = ap.parse_args(["sovits", str(pth), str(cj), "-o", str(tmp_path / "v")])
    assert args.func(args) == 0 and (tmp_path / "v" / "model.json").is_file()




def test_rvc_and_discriminator_files_are_refused(tmp_path):
    import torch

    _, cj = write_voice(tmp_path, "a", sovits_config())
    rvc = tmp_path / "rvc.pth"
    torch.save({"weight": {"emb_g.weight": torch.zeros(109, 256).half()}, "config": [1025, 32], "f0": 1}, rvc)
    with pytest.raises(ModelFormatError, match="RVC"):
        import_sovits(rvc, cj, tmp_path / "o")
    d = tmp_path / "D_0.pth"
    torch.save({"model": {"discriminators.0.convs.0.bias": torch.zeros(16)}, "iteration": 0}, d)
    with pytest.raises(ModelFormatError, match="discriminator"):
        import_sovits(d, cj, tmp_path / "o")


def test_relative_paths_are_read_from_the_callers_cwd(sovits_catalog, tmp_path, monkeypatch):
    """`svc-host import sovits G.pth config.json` from the user's folder: the worker reads that G.pth,
    not a file of the same name beside the installed package."""
    import argparse

    from host_bridge.importers.cli import add_import_subcommands

    work = tmp_path / "work"
    pth, cj = write_voice(work, "rel", sovits_config())
    monkeypatch.chdir(work)
    ap = argparse.ArgumentParser()
    add_import_subcommands(ap.add_subparsers(dest="what"))
    args = ap.parse_args(["sovits", pth.name, cj.name, "-o", "voice"])
    assert args.func(args) == 0
    cfg = json.loads((work / "voice" / "model.json").read_text(encoding="utf-8"))
    assert cfg["provenance"]["imported_from"] == pth.name
