"""One exception root for everything svc-host raises on purpose.

Every message says what was received, what is allowed and how to fix it.
Catch :class:`SvcError` to handle all of them.
"""
from __future__ import annotations


class SvcError(Exception):
    """Root of all svc-host errors."""


class AudioError(SvcError):
    """Audio that cannot be read, written or converted."""


class UnsupportedAudioError(AudioError):
    """A file format, sample rate or channel count outside what we handle."""


class ModelError(SvcError):
    """A model folder that cannot be loaded."""


class ModelFormatError(ModelError):
    """model.json missing, malformed or of an unknown family/version."""


class ManifestError(ModelError):
    """A file's sha256 does not match the folder's manifest."""


class PickleRefusedError(ModelError):
    """A pickle (e.g. a .pth renamed to .safetensors) where safetensors was expected."""


class WeightMismatchError(ModelError):
    """A tensor's name or shape differs from what the model config implies."""


class EncoderMismatchError(ModelError):
    """The content encoder does not give what the voice model was trained on."""


class ParameterError(SvcError, ValueError):
    """A parameter name or value outside the allowed set."""


class UnknownSpeakerError(ParameterError):
    """A speaker name that the model does not have."""


class PresetError(SvcError):
    """A preset file that cannot be used."""


class CatalogError(SvcError):
    """A model or preset name that is not in the catalog."""


class RenderError(SvcError):
    """A render job that failed for a reason other than the above."""


class TrainingError(SvcError):
    """A training stage that cannot continue."""
