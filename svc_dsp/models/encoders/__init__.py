"""Content encoders: audio -> speaker-independent content units, one vector per frame.

The registry (:mod:`svc_dsp.models.encoders.registry`) maps a folder's ``"kind"`` to a loader;
built-in kinds: ``causal-mel`` (:mod:`.causal_mel`), ``onnx-encoder`` (:mod:`.onnx`),
``hubert`` (:mod:`.hubert`), ``whisper`` (:mod:`.whisper`). Each kind module registers itself when imported.
"""
from svc_dsp.models.encoders.registry import (ContentEncoder, content_encoder_kinds, load_content_encoder, mono_at,
                                              register_content_encoder)

__all__ = ["ContentEncoder", "content_encoder_kinds", "load_content_encoder", "mono_at", "register_content_encoder"]
