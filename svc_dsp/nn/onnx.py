"""onnxruntime helpers: provider order and session creation (onnxruntime is imported on use)."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def onnx_providers() -> list[str]:
    """onnxruntime providers in order of preference: CUDA when onnxruntime-gpu sees a GPU, else CPU."""
    import onnxruntime as ort  # optional heavy dependency: only ONNX users pay for it

    avail = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]


def make_session(path: str | Path, options: Any = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for the file at ``path`` on the preferred providers.

    options: an ``onnxruntime.SessionOptions`` (default ones when None).
    """
    import onnxruntime as ort

    so = options if options is not None else ort.SessionOptions()
    return ort.InferenceSession(str(path), sess_options=so, providers=onnx_providers())
