"""Inference backends: torch (the model classes themselves) and onnxruntime."""
