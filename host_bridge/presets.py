"""Presets: TOML files with ``format_version``, a catalog model name and parameter values.

    format_version = 1
    model = "demo"            # a catalog name, never a path
    [parameters]
    transpose = 2.0
    loudness_match = 1.0

Unknown keys, values of the wrong type (``transpose = true`` is refused, not read as 1.0) and
out-of-range values are errors naming the key, the value and the range. Files that are not UTF-8,
over 1 MB or nested deeper than :data:`svc_dsp.models.schema.MAX_DEPTH` are refused the same way.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svc_dsp.fileops import write_atomic
from svc_dsp.engine.parameters import PARAMETERS, parameter
from svc_dsp.errors import CatalogError, ParameterError, PresetError
from svc_dsp.models.catalog import catalog_roots
from svc_dsp.models.schema import MAX_DEPTH, Field, check_value, nesting_depth

PRESET_FORMAT_VERSION = 1
_TOP_KEYS = {"format_version", "model", "parameters", "description"}
MAX_PRESET_BYTES = 1 << 20
# the TOML type each parameter kind takes; values are range-checked by the parameter itself
_KIND_FIELDS = {"float": Field("number"), "bool": Field("bool"), "choice": Field("str"), "str": Field("str"),
                "mix": Field("dict")}


def _typed(k: str, v: Any, where: str) -> None:
    kind = parameter(k).kind
    problems = check_value(v, _KIND_FIELDS[kind], k)
    if kind == "mix" and not problems:
        for name, w in v.items():
            problems += check_value(w, Field("number"), f"{k}.{name}")
    if problems:
        raise PresetError(f"{where}: {problems[0]} (for the '{k}' parameter); edit the preset")


@dataclass
class Preset:
    """A parsed preset. ``parameters`` holds validated values only for the keys it sets."""

    name: str
    model: str
    parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    path: Path | None = None


def parse_preset(text: str, name: str, where: str = "<preset>") -> Preset:
    if len(text) > MAX_PRESET_BYTES:
        raise PresetError(f"{where}: {len(text)} characters; a preset is at most {MAX_PRESET_BYTES >> 20} MB")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PresetError(f"{where}: not valid TOML ({e})") from None
    except RecursionError:
        raise PresetError(f"{where}: nested deeper than the TOML reader allows; not a preset") from None
    if nesting_depth(data) > MAX_DEPTH:
        raise PresetError(f"{where}: nested deeper than {MAX_DEPTH} levels; not a preset")
    for k in data:
        if k not in _TOP_KEYS:
            raise PresetError(f"{where}: unknown key '{k}'; allowed keys: {', '.join(sorted(_TOP_KEYS))}")
    ver = data.get("format_version")
    if ver != PRESET_FORMAT_VERSION:
        raise PresetError(f"{where}: format_version is {ver!r}; this svc-host reads {PRESET_FORMAT_VERSION}")
    model = data.get("model")
    if not isinstance(model, str) or not model or "/" in model or "\\" in model:
        raise PresetError(f"{where}: 'model' must be a catalog model name (no paths); received {model!r}")
    params_in = data.get("parameters", {})
    if not isinstance(params_in, dict):
        raise PresetError(f"{where}: [parameters] must be a table; received {params_in!r}")
    params: dict[str, Any] = {}
    for k, v in params_in.items():
        if k not in PARAMETERS:
            raise PresetError(f"{where}: unknown parameter '{k}' = {v!r}; known: {', '.join(PARAMETERS)}")
        _typed(k, v, where)
        try:
            params[k] = parameter(k).validate(v)
        except ParameterError as e:
            raise PresetError(f"{where}: {e}") from None
    desc = data.get("description", "")
    if not isinstance(desc, str):
        raise PresetError(f"{where}: 'description' must be a string; received {type(desc).__name__}")
    return Preset(name=name, model=model, parameters=params, description=desc)


def find_preset(name: str) -> Path:
    """Path of the catalog preset ``name`` (``<root>/<name>.toml`` or ``<root>/presets/<name>.toml``)."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise CatalogError(f"preset name {name!r} is not a catalog name (no paths)")
    for root in catalog_roots():
        for cand in (root / f"{name}.toml", root / "presets" / f"{name}.toml"):
            if cand.is_file():
                return cand
    raise CatalogError(f"no preset named '{name}'; known presets: {', '.join(list_presets()) or 'none'}")


def list_presets() -> list[str]:
    names: set[str] = set()
    for root in catalog_roots():
        for d in (root, root / "presets"):
            if d.is_dir():
                names.update(p.stem for p in d.glob("*.toml") if not p.name.startswith("."))
    return sorted(names)


def load_preset(name_or_file: str | os.PathLike, *, allow_path: bool = False) -> Preset:
    """Load a preset by catalog name; a file path only when ``allow_path`` (local CLI use)."""
    p = Path(name_or_file)
    if allow_path and p.suffix == ".toml" and p.is_file():
        path = p
    else:
        path = find_preset(str(name_or_file))
    if path.stat().st_size > MAX_PRESET_BYTES:
        raise PresetError(f"{path}: {path.stat().st_size} bytes; a preset is at most {MAX_PRESET_BYTES >> 20} MB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise PresetError(f"{path}: not UTF-8 text (byte {e.start}); save the preset as UTF-8") from None
    pr = parse_preset(text, path.stem, str(path))
    pr.path = path
    return pr


def preset_toml(model: str, parameters: dict[str, Any], description: str = "") -> str:
    import tomli_w

    params = {k: v for k, v in parameters.items() if v is not None}
    for k in params:
        parameter(k)
    doc: dict[str, Any] = {"format_version": PRESET_FORMAT_VERSION, "model": model}
    if description:
        doc["description"] = description
    doc["parameters"] = params
    return tomli_w.dumps(doc)


def save_preset(path: str | os.PathLike, model: str, parameters: dict[str, Any], description: str = "") -> Path:
    """Write a preset atomically (temp file + rename)."""
    path = Path(path)
    text = preset_toml(model, parameters, description)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, text)
