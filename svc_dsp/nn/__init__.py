"""Torch and onnxruntime building blocks shared by features, encoders and voice models.

``mel``: streaming log-mel front end on the engine's frame grid; ``cached_conv``: causal
convolutions that carry their own cache; ``onnx``: onnxruntime providers and sessions.
The bottom layer: it imports nothing else from svc_dsp except ``errors``.
"""
