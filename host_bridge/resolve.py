"""The one answer to "model or preset -> model and parameters", for the effect, the CLI, the server
and Session.load_preset.

Rules (the same everywhere):

- a value with a path separator, a leading ``.`` or ``~``, or an absolute path is a path
  (:func:`host_bridge.model_ref.is_path_ref`): a preset ``.toml`` file or a model folder; a path
  is refused where ``allow_path`` is False (names that arrive over the network);
- a bare name is a catalog name, never a file or folder in the current directory (``./demo``
  never shadows the catalog voice ``demo``): a catalog preset of that name first (it names its
  model and settings), else a catalog model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from host_bridge.model_ref import is_path_ref, resolve_model_ref
from host_bridge.presets import Preset, find_preset, load_preset
from svc_dsp.errors import CatalogError, ParameterError
from svc_dsp.models.base import VoiceModel
from svc_dsp.models.catalog import find_in_catalog, load_model


@dataclass
class Resolved:
    """model: the loaded voice; ref: the name presets and saved state use for it (a catalog name, or
    the folder's name for a path); parameters: the preset's values (empty for a bare model)."""

    model: VoiceModel
    ref: str
    parameters: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None


def model_folder(text: str, *, allow_path: bool = True) -> str:
    """The model folder a model reference names: a catalog name, or (``allow_path``) a folder path."""
    text = str(text)
    if is_path_ref(text):
        if not allow_path:
            raise CatalogError(f"model {text!r} is a path: no paths here, only catalog names "
                               f"(install the model under <root>/models/ and use its name)")
        return resolve_model_ref(text)
    return str(find_in_catalog("models", text))


def resolve(source: Any, *, allow_path: bool = True) -> Resolved:
    """A VoiceModel, a :class:`Preset`, a preset ``.toml`` path, a model folder path or a catalog name
    (preset first, then model) -> :class:`Resolved`. Raises CatalogError / ModelFormatError /
    PresetError naming what was received."""
    if isinstance(source, VoiceModel):
        return Resolved(source, source.folder.name if source.folder else source.name)
    if isinstance(source, Preset):
        return Resolved(load_model(model_folder(source.model, allow_path=allow_path)), source.model,
                        dict(source.parameters), source.name)
    if not isinstance(source, (str, os.PathLike)):
        raise ParameterError(f"model_or_preset must be a VoiceModel, a Preset, a model folder, a preset .toml "
                             f"file or a catalog name; received {type(source).__name__}")
    text = os.fspath(source)
    if is_path_ref(text) or (Path(text).suffix == ".toml" and Path(text).is_file()):
        if not allow_path:
            raise CatalogError(f"{text!r} is a path: no paths here, only catalog names")
        if Path(text).suffix == ".toml":
            return resolve(load_preset(text, allow_path=True), allow_path=True)
        folder = model_folder(text)
        return Resolved(load_model(folder), Path(folder).name)
    try:
        preset_path = find_preset(text)
    except CatalogError:
        return Resolved(load_model(model_folder(text)), text)
    return resolve(load_preset(preset_path, allow_path=True), allow_path=allow_path)
