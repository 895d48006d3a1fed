"""Where models, encoders and presets are found by name, and the one model loader.

Catalog roots, searched in order:
1. folders named in the environment variable ``SVC_HOST_PATH`` (os.pathsep separated),
2. the user folder ``$SVC_HOST_HOME`` (default ``~/.local/share/svc-host``),
3. the shipped ``presets/`` folder of this installation.
Each root may hold ``models/<name>/``, ``encoders/<name>/`` and ``*.toml`` presets.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from svc_dsp.errors import CatalogError, EncoderMismatchError, ModelFormatError
from svc_dsp.models.encoders.registry import ContentEncoder, load_content_encoder
from svc_dsp.models.base import VoiceModel, family_loader, family_names
from svc_dsp.models.folder import read_config, sha256_file, verify_manifest

SHIPPED_ROOT = Path(__file__).resolve().parents[2] / "presets"


def user_root() -> Path:
    """The user's own catalog folder: $SVC_HOST_HOME, else ~/.local/share/svc-host."""
    return Path(os.environ.get("SVC_HOST_HOME", Path.home() / ".local" / "share" / "svc-host"))


def catalog_roots() -> list[Path]:
    roots = [Path(p) for p in os.environ.get("SVC_HOST_PATH", "").split(os.pathsep) if p]
    roots.append(user_root())
    roots.append(SHIPPED_ROOT)
    return roots


def _valid_name(name: str, what: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        raise CatalogError(f"{what} name {name!r} is not a catalog name (no paths, no leading dot)")


def find_in_catalog(kind: str, name: str) -> Path:
    """Folder of ``kind`` ('models' or 'encoders') called ``name`` in the first root that has it."""
    _valid_name(name, kind[:-1])
    for root in catalog_roots():
        p = root / kind / name
        if p.is_dir():
            return p
    known = sorted({p.name for r in catalog_roots() if (r / kind).is_dir() for p in (r / kind).iterdir()
                    if p.is_dir() and not p.name.startswith(".")})
    raise CatalogError(f"no {kind[:-1]} named '{name}' in the catalog ({', '.join(map(str, catalog_roots()))}); "
                       f"known: {', '.join(known) or 'none'}")


def list_catalog(kind: str) -> list[str]:
    names: set[str] = set()
    for root in catalog_roots():
        if (root / kind).is_dir():
            names.update(p.name for p in (root / kind).iterdir() if p.is_dir() and not p.name.startswith("."))
    return sorted(names)


def resolve_encoder(model_folder: Path, ref: Mapping[str, Any]) -> ContentEncoder:
    """Load the content encoder a voice model names: a sub-folder of the model, or a catalog name.

    If the reference carries the encoder weights' sha256, a different encoder is refused.
    """
    if ref.get("folder"):
        sub = (model_folder / str(ref["folder"])).resolve()
        if model_folder.resolve() not in sub.parents:
            raise ModelFormatError(f"'{model_folder}': content_encoder.folder {ref['folder']!r} points outside "
                                   f"the model folder; it must be a sub-folder")
        folder = sub
    elif ref.get("name"):
        folder = find_in_catalog("encoders", str(ref["name"]))
    else:
        raise ModelFormatError(f"'{model_folder}/model.json': content_encoder needs 'folder' or 'name'")
    enc = load_content_encoder(folder)
    want = ref.get("sha256")
    if want:
        files = sorted(folder.glob("*.safetensors"))
        got = sha256_file(files[0]) if files else ""
        if got != want:
            raise EncoderMismatchError(
                f"model '{model_folder}' was trained with content encoder '{ref.get('name')}' sha256 "
                f"{want[:12]}..., but '{folder}' holds {got[:12] or 'nothing'}...; install the matching encoder "
                f"or retrain the voice with this one")
    if ref.get("dim") is not None and int(ref["dim"]) != enc.dim:
        raise EncoderMismatchError(
            f"model '{model_folder}' expects {int(ref['dim'])}-dim content units; encoder {enc.describe()} gives "
            f"{enc.dim}. Use the encoder named in model.json, or re-run feature extraction with it.")
    return enc


def load_model(path_or_name: str | os.PathLike) -> VoiceModel:
    """Load a voice model from a folder path or a catalog name.

    Checks model.json, the SHA256SUMS manifest, every tensor's name and shape, and the
    content encoder. Never unpickles.
    """
    p = Path(path_or_name).expanduser()
    text = str(path_or_name)
    # a str without a path separator (not starting with '.', '~' or '/') is a catalog name, never a
    # folder of that name in the current directory: './demo' must not shadow the catalog voice 'demo'
    is_path = (not isinstance(path_or_name, str) or "/" in text or "\\" in text or text.startswith((".", "~"))
               or os.path.isabs(text))
    if not is_path:
        p = find_in_catalog("models", text)
    elif not p.is_dir():
        raise ModelFormatError(f"model folder '{text}' does not exist; pass an existing model folder or a "
                               f"catalog name ({', '.join(list_catalog('models')) or 'none installed'})")
    cfg = read_config(p)
    verify_manifest(p)
    loader = family_loader(str(cfg["family"]))
    if loader is None:
        raise ModelFormatError(f"'{p}': model family {cfg['family']!r} is unknown; known families: "
                               f"{', '.join(family_names())}")
    model = loader(p, cfg)
    from svc_dsp.models.retrieval import load_index

    model.feature_index = load_index(p)  # type: ignore[attr-defined]  (None without an index)
    return model
