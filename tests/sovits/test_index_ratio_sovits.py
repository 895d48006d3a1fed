"""index_ratio on so-vits voices (windowed regime): offline and streaming reach the retrieval."""
from __future__ import annotations

import numpy as np
import pytest

from host_bridge.importers.sovits import import_sovits
from svc_dsp.models.catalog import load_model
from tests.sovits.builders import sovits_config, write_voice


@pytest.fixture(scope="module")
def indexed(sovits_catalog, tmp_path_factory):
    from svc_dsp.models.retrieval import FeatureIndex

    tmp = tmp_path_factory.mktemp("ir")
    pth, cj = write_voice(tmp / "src", "tiny", sovits_config(tiny=True, n_speakers=1), seed=6)
    folder, _ = import_sovits(pth, cj, tmp / "tiny")
    m = load_model(folder)
    assert m.feature_index is None
    m.feature_index = FeatureIndex({m.speakers[0]: np.random.default_rng(0).standard_normal((64, 768))})
    return m


@pytest.fixture()
def seen(monkeypatch):
    from svc_dsp.models.retrieval import FeatureIndex

    out: list[float] = []
    orig = FeatureIndex.apply

    def apply(self, units, weights, speakers, ratio):  # noqa: ANN001
        out.append(round(float(ratio), 6))
        return orig(self, units, weights, speakers, ratio)

    monkeypatch.setattr(FeatureIndex, "apply", apply)
    return out


def test_offline_and_streaming_pass_index_ratio(indexed, voice_audio, seen):
    from svc_dsp.engine.converter import Converter
    from svc_dsp.engine.streaming import StreamingConverter

    x, sr = voice_audio
    y0 = Converter(indexed, f0_method="yin").convert(x[: sr // 2], sr)
    assert seen == []
    y1 = Converter(indexed, f0_method="yin", index_ratio=0.8).convert(x[: sr // 2], sr)
    assert seen and set(seen) == {0.8} and not np.allclose(y0, y1)
    seen.clear()
    sc = StreamingConverter(indexed, sr, 4096, f0_method="yin", index_ratio=0.25)
    for i in range(0, sr // 2, 4096):
        sc.process(x[i:i + 4096])
    assert seen and set(seen) == {0.25}
