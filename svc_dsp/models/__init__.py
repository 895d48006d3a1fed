"""Voice-model families, model folders and the catalog."""
from svc_dsp.models.base import VoiceModel, family_names, register_family

__all__ = ["VoiceModel", "family_names", "register_family", "load_model"]


def __getattr__(name: str):  # lazy: loading pulls in torch
    if name == "load_model":
        from svc_dsp.models.catalog import load_model
        return load_model
    raise AttributeError(name)
