"""A small typed validator for the JSON/TOML files users hand us (model.json, presets).

A schema is a mapping ``key -> Field``. :func:`check` returns one line per problem (never raises
for any value a JSON or TOML parser can produce), each naming the key path, what was received and
what is allowed. Types are strict: ``true`` is not a number and ``44100.0`` is not an integer.
:func:`nesting_depth` measures nesting without recursion, so a hostile file cannot overflow the
stack while being checked.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

MAX_DEPTH = 32  # no file we read nests deeper


@dataclass(frozen=True)
class Field:
    """One key. kind: "int", "number", "str", "bool", "list", "dict" or "any"."""

    kind: str
    required: bool = False
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] | None = None
    items: "Field | None" = None          # lists: each item
    min_len: int = 0                      # lists/strings
    max_len: int | None = None            # lists/strings
    fields: "Mapping[str, Field] | None" = None  # dicts: their keys (unknown keys allowed)
    hint: str = ""


def describe(v: Any) -> str:
    """A short, safe text of a received value and its type."""
    if isinstance(v, bool):
        return f"{str(v).lower()} (a boolean)"
    if isinstance(v, (int, float)):
        return f"{v!r} (a number)"
    if isinstance(v, str):
        return f"{v[:40]!r} (a string)" if len(v) <= 40 else f"{v[:40]!r}... (a string of {len(v)} characters)"
    if isinstance(v, list):
        return f"a list of {len(v)} items"
    if isinstance(v, dict):
        return f"a table/object of {len(v)} keys"
    if v is None:
        return "null"
    return f"a {type(v).__name__}"


def _expected(f: Field) -> str:
    rng = ""
    if f.lo is not None and f.hi is not None:
        rng = f" {f.lo:g}..{f.hi:g}"
    elif f.lo is not None:
        rng = f" >= {f.lo:g}"
    if f.choices is not None:
        return "one of " + ", ".join(repr(c) for c in f.choices)
    return {"int": "an integer", "number": "a number", "str": "a string", "bool": "true or false",
            "list": "a list", "dict": "a table/object", "any": "a value"}[f.kind] + rng


def _type_ok(v: Any, kind: str) -> bool:
    if kind == "any":
        return True
    if kind == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, {"str": str, "bool": bool, "list": list, "dict": dict}[kind])


def check_value(v: Any, f: Field, path: str) -> list[str]:
    """Problems of one value against its field (empty list = fine)."""
    fix = f"; {f.hint}" if f.hint else ""
    if not _type_ok(v, f.kind):
        return [f"{path} is {describe(v)}; expected {_expected(f)}{fix}"]
    if f.choices is not None and v not in f.choices:
        return [f"{path} is {describe(v)}; expected {_expected(f)}{fix}"]
    if f.kind in ("int", "number"):
        if isinstance(v, float) and not math.isfinite(v):
            return [f"{path} is {v!r}; expected a finite number{(' ' + _expected(f)) if f.lo is not None else ''}{fix}"]
        if (f.lo is not None and v < f.lo) or (f.hi is not None and v > f.hi):
            return [f"{path} is {describe(v)}; expected {_expected(f)}{fix}"]
    if f.kind in ("list", "str"):
        if len(v) < f.min_len or (f.max_len is not None and len(v) > f.max_len):
            most = f"at most {f.max_len}" if f.max_len is not None else "any number of"
            unit = "items" if f.kind == "list" else "characters"
            return [f"{path} has {len(v)} {unit}; expected at least {f.min_len} and {most}{fix}"]
    out: list[str] = []
    if f.kind == "list" and f.items is not None:
        for i, item in enumerate(v):
            out += check_value(item, f.items, f"{path}[{i}]")
            if len(out) >= 10:
                break
    if f.kind == "dict" and f.fields is not None:
        out += check(v, f.fields, path + ".")
    return out


def check(doc: Mapping[str, Any], schema: Mapping[str, Field], prefix: str = "") -> list[str]:
    """Problems of a mapping against ``schema``: missing required keys, wrong types, ranges."""
    out: list[str] = []
    for key, f in schema.items():
        if key not in doc:
            if f.required:
                out.append(f"{prefix}{key} is missing; expected {_expected(f)}{('; ' + f.hint) if f.hint else ''}")
            continue
        out += check_value(doc[key], f, prefix + key)
    return out


def nesting_depth(doc: Any, limit: int = MAX_DEPTH) -> int:
    """Depth of nested lists/dicts (a scalar is 0), stopping once past ``limit``."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (list, dict)):
            d += 1
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((x, d) for x in (v.values() if isinstance(v, dict) else v))
    return deepest
