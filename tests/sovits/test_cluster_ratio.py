"""cluster_ratio (so-vits k-means mixing) reaches the voice model from the Python API, the
streaming engine, presets and the CLI (OSC and MIDI: tests/host_bridge/server/test_cluster_ratio_osc.py)."""
from __future__ import annotations

import numpy as np
import pytest

from host_bridge.importers.sovits import import_sovits
from svc_dsp.models.catalog import load_model
from tests.sovits.builders import sovits_config, write_voice


@pytest.fixture(scope="module")
def clustered(sovits_catalog, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cr")
    pth, cj = write_voice(tmp / "src", "tiny", sovits_config(tiny=True, n_speakers=1), seed=5)
    folder, _ = import_sovits(pth, cj, tmp / "tiny")
    m = load_model(folder)
    m.cluster = {m.speakers[0]: np.random.default_rng(0).standard_normal((16, 768)).astype(np.float32)}
    return m


def _spy(model, monkeypatch):
    seen: list[float] = []
    orig = model.apply_cluster

    def apply_cluster(units, speaker, ratio):
        seen.append(ratio)
        return orig(units, speaker, ratio)

    monkeypatch.setattr(model, "apply_cluster", apply_cluster)
    return seen


def test_parameter_table_and_aliases():
    from svc_dsp.engine.parameters import parameter

    p = parameter("cr")
    assert p.name == "cluster_ratio" and p.default == 0.0 and (p.minimum, p.maximum) == (0.0, 1.0)
    assert parameter("cluster_infer_ratio") is p
    with pytest.raises(Exception, match="cluster_ratio"):
        p.validate(1.5)


def test_offline_converter_passes_it(clustered, voice_audio, monkeypatch):
    from svc_dsp.engine.converter import Converter

    seen = _spy(clustered, monkeypatch)
    x, sr = voice_audio
    y0 = Converter(clustered, f0_method="yin").convert(x[: sr // 2], sr)
    assert seen == []                                   # 0 = off: no centre lookup at all
    y1 = Converter(clustered, f0_method="yin", cluster_ratio=0.8).convert(x[: sr // 2], sr)
    assert seen and set(seen) == {0.8}
    assert not np.allclose(y0, y1)                      # the units moved, the voice changed


def test_streaming_engine_follows_set(clustered, voice_audio, monkeypatch):
    from svc_dsp.engine.streaming import StreamingConverter

    seen = _spy(clustered, monkeypatch)
    x, sr = voice_audio
    sc = StreamingConverter(clustered, sr, 1024, cluster_ratio=0.25)
    for i in range(0, sr // 2, 1024):
        sc.process(x[i:i + 1024])
    assert seen and set(seen) == {0.25}
    sc.set("cr", 0.5)
    seen.clear()
    for i in range(sr // 2, sr, 1024):
        sc.process(x[i:i + 1024])
    assert seen and set(seen) == {0.5}


def test_preset_and_cli_carry_it(tmp_path):
    from host_bridge.cli import _params_from_args, build_parser
    from host_bridge.presets import load_preset

    args = build_parser().parse_args(["render", "in.wav", "-o", "out", "-cr", "0.4"])
    assert _params_from_args(args)["cluster_ratio"] == 0.4
    args = build_parser().parse_args(["render", "in.wav", "-o", "out", "--cluster-ratio", "0.6"])
    assert _params_from_args(args)["cluster_ratio"] == 0.6
    p = tmp_path / "p.toml"
    p.write_text('format_version = 1\nmodel = "demo"\n\n[parameters]\ncluster_ratio = 0.3\n', encoding="utf-8")
    assert load_preset(p, allow_path=True).parameters["cluster_ratio"] == 0.3
