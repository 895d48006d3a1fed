"""Imported so-vits voices stream in the windowed regime with a fixed, reported latency."""
from __future__ import annotations

import numpy as np

from host_bridge.importers.sovits import import_sovits
from svc_dsp.engine.streaming import StreamingConverter
from svc_dsp.models.catalog import load_model
from tests.sovits.builders import sovits_config, write_voice


def test_imported_voice_streams_with_fixed_latency(sovits_catalog, voice_audio, tmp_path):
    pth, cj = write_voice(tmp_path / "src", "tiny", sovits_config(tiny=True, n_speakers=2), seed=3)
    folder, _ = import_sovits(pth, cj, tmp_path / "tiny")
    m = load_model(folder)
    x, sr = voice_audio
    lat = {StreamingConverter(m, sr, b, **p).latency_samples
           for b in (128, 1024) for p in ({}, {"transpose": 3.0}, {"mix": 0.5})}
    assert len(lat) == 1
    sc = StreamingConverter(m, sr, 512)
    L = sc.latency_samples
    xx = np.concatenate([x, np.zeros(L, np.float32)])
    y = np.concatenate([sc.process(xx[i:i + 512]) for i in range(0, xx.shape[0], 512)])[L:]
    assert y.shape == x.shape and np.isfinite(y).all() and np.sqrt(np.mean(y ** 2)) > 1e-3
    assert sc.xruns == 0
