"""Inference backends: torch (the model classes themselves) and onnxruntime."""


def onnx_providers() -> list[str]:
    """onnxruntime providers in order of preference: CUDA when onnxruntime-gpu sees a GPU, else CPU."""
    import onnxruntime as ort

    avail = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]
