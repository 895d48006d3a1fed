"""svc_dsp — the svc-host engine: audio in -> audio out.

Heavy modules (torch) are imported lazily, so ``import svc_dsp`` is cheap.
"""
from __future__ import annotations

from typing import Any

from svc_dsp.errors import SvcError

__all__ = ["SvcError", "Converter", "load_model", "PARAMETERS"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Converter":
        from svc_dsp.engine.converter import Converter
        return Converter
    if name == "load_model":
        from svc_dsp.models.catalog import load_model
        return load_model
    if name == "PARAMETERS":
        from svc_dsp.engine.parameters import PARAMETERS
        return PARAMETERS
    if name == "StreamingConverter":
        from svc_dsp.engine.streaming import StreamingConverter
        return StreamingConverter
    raise AttributeError(f"module 'svc_dsp' has no attribute '{name}'")
