"""Kind "onnx-encoder": an ONNX content encoder (MoeSS/MoeVoiceStudio layout, spec §5.2).

Input ``source`` float32 (1, 1, N) at 16 kHz, output ``embed`` float32 (1, T, D). Runs under
onnxruntime, CUDAExecutionProvider first when available, else CPU. Folder: ``model.json``
{"family": "content-encoder", "kind": "onnx-encoder", "name", "dim", "file"} + the .onnx file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import ModelFormatError
from svc_dsp.models.encoders.registry import ContentEncoder, mono_at, register_content_encoder
from svc_dsp.nn.onnx import make_session

SAMPLE_RATE = 16000


class OnnxContentEncoder(ContentEncoder):
    kind = "onnx-encoder"
    causal = False
    frame_seconds = 0.02

    def __init__(self, config: dict[str, Any], onnx_path: Path) -> None:
        self.config = dict(config)
        try:
            self.session = make_session(onnx_path)
        except Exception as e:  # onnxruntime's own error types
            raise ModelFormatError(f"'{onnx_path}' could not be opened by onnxruntime: {e}") from None
        self.input_name = self.session.get_inputs()[0].name
        self.dim = int(config.get("dim") or self.session.get_outputs()[0].shape[-1])

    def encode(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """audio float32 (N,) (resampled to 16 kHz if needed) -> (T, dim)."""
        x = mono_at(audio, sample_rate, SAMPLE_RATE)
        if x.shape[0] < 400:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.session.run(None, {self.input_name: x[None, None, :]})[0]
        out = np.asarray(out, dtype=np.float32)
        if out.ndim != 3 or out.shape[0] != 1 or out.shape[2] != self.dim:
            raise ModelFormatError(f"ONNX encoder '{self.config.get('name')}' returned shape {out.shape}; expected "
                                   f"(1, T, {self.dim})")
        return out[0]


def _load(folder: Path, cfg: dict[str, Any]) -> OnnxContentEncoder:
    name = str(cfg.get("file", "encoder.onnx"))
    path = (folder / name).resolve()
    if folder.resolve() not in path.parents or not path.is_file():
        raise ModelFormatError(f"'{folder}/model.json': file {name!r} is not an .onnx file inside the folder")
    return OnnxContentEncoder(cfg, path)


register_content_encoder("onnx-encoder", _load)
