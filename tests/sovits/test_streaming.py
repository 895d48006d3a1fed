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


def test_windowed_stream_decodes_only_the_kept_part_with_the_same_output(sovits_catalog, voice_audio, tmp_path):
    pth, cj = write_voice(tmp_path / "src", "tiny", sovits_config(tiny=True, n_speakers=2), seed=4)
    folder, _ = import_sovits(pth, cj, tmp_path / "tiny")
    m = load_model(folder)
    x, sr = voice_audio
    # the model call alone: the kept samples equal a whole-window call's, the rest is 0
    hop = m.hop_size
    n = 40 * hop + 100
    a = x[:n]
    f0 = np.full(-(-n // hop), 220.0, np.float32)
    spk = m.speaker_weights()
    full = m.convert_window(a, f0, spk)
    part = m.convert_window(a, f0, spk, keep=(13 * hop + 7, 29 * hop - 5))
    assert np.max(np.abs(part[13 * hop + 7:29 * hop - 5] - full[13 * hop + 7:29 * hop - 5])) <= 1e-4
    assert not part[:13 * hop].any() and not part[29 * hop:].any()
    # the stream passes the kept range; its output equals a stream that decodes whole windows
    outs = []
    for keep in (True, False):
        sc = StreamingConverter(m, sr, 512)
        assert sc.stage.core._keep_kw
        sc.stage.core._keep_kw = keep
        outs.append(np.concatenate([sc.process(x[i:i + 512]) for i in range(0, x.shape[0], 512)]))
    assert np.sqrt(np.mean(outs[1] ** 2)) > 1e-3
    assert np.max(np.abs(outs[0] - outs[1])) <= 1e-4
