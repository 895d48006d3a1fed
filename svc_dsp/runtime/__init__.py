"""Inference backends: torch (the model classes themselves) and onnxruntime."""
from svc_dsp.nn.onnx import make_session, onnx_providers

__all__ = ["make_session", "onnx_providers"]
