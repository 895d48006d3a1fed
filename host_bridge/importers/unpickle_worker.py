"""Subprocess entry point: restricted-unpickle one checkpoint into safetensors + JSON.

    python -m host_bridge.importers.unpickle_worker IN OUT.safetensors [--select KEY]
        [--allow-numpy] [--allow-config-objects]

Writes OUT.safetensors (every tensor, named by its path in the pickled tree joined with '/',
relative to --select when given; bfloat16 stored as float32) and OUT.json (the non-tensor
values: numbers, strings, lists, dicts; tensors appear as {"__tensor__": name}, skipped config
objects as {"__skipped__": "module.Class"}). Exit status 0 = done, 3 = refused (message on stderr,
first line), 4 = unreadable file. Run in its own process so a bug in the unpickler cannot reach
the importer; it imports neither torch nor the project's engine.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from host_bridge.importers.restricted_unpickle import LazyTensor, RefusedGlobal, _StatefulPlaceholder, load


def _flatten(obj: Any, prefix: str, tensors: dict[str, np.ndarray], notes: dict[str, str]) -> Any:
    if isinstance(obj, LazyTensor):
        arr = obj.numpy()
        tensors[prefix] = arr
        if obj.was_bfloat16:
            notes[prefix] = "bfloat16 stored as float32"
        return {"__tensor__": prefix, "shape": list(arr.shape), "dtype": str(arr.dtype)}
    if isinstance(obj, np.ndarray):
        tensors[prefix] = np.ascontiguousarray(obj)
        return {"__tensor__": prefix, "shape": list(obj.shape), "dtype": str(obj.dtype)}
    if isinstance(obj, _StatefulPlaceholder):
        return {"__skipped__": obj.qualname}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            key = str(k)
            out[key] = _flatten(v, f"{prefix}/{key}" if prefix else key, tensors, notes)
        return out
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}/{i}" if prefix else str(i), tensors, notes) for i, v in enumerate(obj)]
    if isinstance(obj, (bool, int, str)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else str(obj)
    if isinstance(obj, (bytes, bytearray)):
        return {"__bytes__": len(obj)}
    if isinstance(obj, type) and issubclass(obj, _StatefulPlaceholder):
        return {"__skipped__": obj.qualname}
    if isinstance(obj, complex):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return [_flatten(v, prefix, tensors, notes) for v in sorted(obj, key=repr)]
    return {"__skipped__": type(obj).__name__}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m host_bridge.importers.unpickle_worker")
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--select", default=None)
    ap.add_argument("--allow-numpy", action="store_true")
    ap.add_argument("--allow-config-objects", action="store_true")
    a = ap.parse_args(argv)
    from safetensors.numpy import save_file

    try:
        tree, skipped = load(a.input, allow_numpy=a.allow_numpy, allow_config_objects=a.allow_config_objects,
                             select=a.select)
    except RefusedGlobal as e:
        print(f"REFUSED: {e}", file=sys.stderr)
        return 3
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, OSError) as e:
        print(f"UNREADABLE: {type(e).__name__}: {e}", file=sys.stderr)
        return 4
    if a.select is not None:
        if not isinstance(tree, dict) or a.select not in tree:
            keys = list(tree)[:20] if isinstance(tree, dict) else type(tree).__name__
            print(f"UNREADABLE: the checkpoint has no top-level key '{a.select}' (it has {keys})", file=sys.stderr)
            return 4
        rest = {k: v for k, v in tree.items() if k != a.select}
        tensors: dict[str, np.ndarray] = {}
        notes: dict[str, str] = {}
        _flatten(tree[a.select], "", tensors, notes)
        meta = _flatten(rest, "", {}, {})
    else:
        tensors, notes = {}, {}
        meta = _flatten(tree, "", tensors, notes)
    out = Path(a.output)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(out))
    except Exception as e:  # safetensors' own error types
        print(f"UNREADABLE: cannot write tensors: {e}", file=sys.stderr)
        return 4
    out.with_suffix(".json").write_text(json.dumps(
        {"meta": meta, "skipped_objects": sorted(skipped), "notes": notes}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
