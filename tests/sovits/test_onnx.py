"""ONNX export of imported so-vits voices: torch/onnxruntime parity within 1e-4 at several lengths."""
from __future__ import annotations

import numpy as np

from host_bridge.importers.sovits import import_sovits
from svc_dsp.models.folder import load_tensors, read_config
from svc_dsp.models.sovits.frames import stretch_units, volume
from svc_dsp.models.sovits.model import SovitsModel
from svc_dsp.runtime.onnx_sovits import OnnxSovitsRunner, export_sovits_onnx, parity
from tests.sovits.builders import sovits_config, write_voice


def test_export_parity_and_runner(tmp_path):
    cfg = sovits_config(n_speakers=2, vol_embedding=True, use_transformer_flow=True, flow_share_parameter=True)
    pth, cj = write_voice(tmp_path, "a", cfg)
    folder, _ = import_sovits(pth, cj, tmp_path / "v")
    m = SovitsModel(read_config(folder), load_tensors(folder / "model.safetensors"), None, folder)
    path = export_sovits_onnx(m, tmp_path / "voice.onnx")
    for n in (2, 61):  # other lengths than the export's: the graph is shape-independent
        assert parity(m, path, n_frames=n) <= 1e-4
    t_u, t = 12, 21
    rng = np.random.default_rng(0)
    units = rng.standard_normal((t_u, 768)).astype(np.float32)
    f0, uv = np.full(t, 180.0, np.float32), np.ones(t, np.float32)
    vol = volume(rng.standard_normal(t * 512).astype(np.float32) * 0.1, 512)
    ref = m.synthesize(stretch_units(units, t, m.unit_mode), f0, uv, "spk1", vol)
    mix = np.tile(np.array([[0.0, 1.0]], np.float32), (t, 1))
    got = OnnxSovitsRunner(m, path).synthesize(units, f0, uv, mix, vol)
    assert np.max(np.abs(ref - got)) <= 1e-4
