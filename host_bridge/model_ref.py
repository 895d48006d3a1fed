"""What ``--model`` means on the render command line.

A value with a path separator, a leading ``.`` or ``~``, or an absolute path is a model folder;
a bare name is a catalog name, never a folder of that name in the current directory (``demo``
is the shipped demo voice even when ``./demo/`` exists). A so-vits-svc checkpoint (``.pth``)
is answered with the import command that turns it into a model folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from svc_dsp.errors import CatalogError, ModelFormatError

__all__ = ["is_path_ref", "resolve_model_ref"]

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt")


def is_path_ref(text: str) -> bool:
    """True when ``text`` names a path (not a catalog name); a checkpoint file name (``voice.pth``)
    is a path too, so it is answered with the import command rather than a catalog miss."""
    return (text.lower().endswith(CHECKPOINT_SUFFIXES) or os.sep in text or "/" in text or (os.altsep or "/") in text or text.startswith((".", "~"))
            or os.path.isabs(text))


def _import_hint(text: str) -> str:
    p = Path(text).expanduser()
    cfg = p.with_name("config.json")
    cfg_text = str(cfg) if cfg.is_file() else "config.json"
    dest = f"./{p.stem}" if p.stem else "./voice"
    return (f"'{text}' is a so-vits-svc checkpoint (a pickle, which svc-host never loads directly); import it "
            f"once into a model folder: svc-host import sovits {text} {cfg_text} -o {dest}  (config.json: the one "
            f"it was trained with), then render with --model {dest}")


def resolve_model_ref(text: str) -> str:
    """A model folder path for ``--model``/a preset's model: an existing folder for path-like
    values, the catalog's folder for bare names. Raises ModelFormatError / CatalogError (one line)."""
    text = str(text)
    if text.lower().endswith(CHECKPOINT_SUFFIXES):
        raise ModelFormatError(_import_hint(text))
    if is_path_ref(text):
        p = Path(text).expanduser()
        if p.is_dir():
            return os.path.abspath(p)  # absolute: no later step can take 'voice' for a catalog name
        raise ModelFormatError(f"model folder '{text}' does not exist; pass an existing model folder or a catalog "
                               f"name (see svc-host models)")
    from svc_dsp.models.catalog import find_in_catalog

    try:
        return str(find_in_catalog("models", text))
    except CatalogError as e:
        if Path(text).is_dir():
            raise CatalogError(f"{e}; for the folder './{text}' in the current directory write --model ./{text}") \
                from None
        raise
