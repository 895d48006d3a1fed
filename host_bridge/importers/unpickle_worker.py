"""Subprocess entry point: restricted-unpickle one checkpoint into safetensors + JSON.

    python -m host_bridge.importers.unpickle_worker IN OUT.safetensors [--select KEY]
        [--allow-numpy] [--allow-config-objects]

Writes OUT.safetensors (every tensor, named by its path in the pickled tree joined with '/',
relative to --select when given; bfloat16 stored as float32) and OUT.json (the non-tensor
values: numbers, strings, lists, dicts; tensors appear as {"__tensor__": name}, skipped config
objects as {"__skipped__": "module.Class"}). Exit status 0 = done, 3 = refused (message on stderr,
first line), 4 = unreadable file, 5 = over a memory limit. Run in its own process so a bug in the
unpickler cannot reach the importer; it imports neither torch nor the project's engine.

Before reading, the worker caps its own address space (RLIMIT_AS) at what it has mapped now plus
:data:`AS_HEADROOM` plus :data:`AS_PER_DATA_BYTE` x the file's data (see :func:`address_space_limit`),
behind the unpickler's own budgets, so no file can make it take the machine's memory.
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

from host_bridge.importers.restricted_unpickle import (MAX_NESTING, LazyTensor, LimitExceeded, Limits, RefusedGlobal,
                                                      _StatefulPlaceholder, data_bytes, load)

AS_HEADROOM = 512 << 20     # interpreter, numpy, safetensors, json buffers
AS_PER_DATA_BYTE = 6        # data read once, copied into arrays, serialised by safetensors, + slack


def _vm_size() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def address_space_limit(path: str | Path) -> int:
    """Bytes of address space the worker allows itself for ``path``: mapped now + headroom + 6x data."""
    pkl, stored = data_bytes(path)
    return _vm_size() + AS_HEADROOM + AS_PER_DATA_BYTE * (pkl + stored)


def _cap_address_space(limit: int) -> bool:
    try:
        import resource
    except ImportError:  # not POSIX: the unpickler's budgets still apply
        return False
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return True


def _flatten(obj: Any, prefix: str, tensors: dict[str, np.ndarray], notes: dict[str, str],
             limits: Limits, depth: int = 0) -> Any:
    if depth > MAX_NESTING:
        raise LimitExceeded(f"containers nested deeper than the limit of {MAX_NESTING} levels; not a checkpoint")
    limits.node(obj, depth)
    if isinstance(obj, LazyTensor):
        limits.tensors.charge(obj.nbytes, f"tensor '{prefix}' of shape {obj.shape}")
        arr = obj.numpy()
        tensors[prefix] = arr
        if obj.was_bfloat16:
            notes[prefix] = "bfloat16 stored as float32"
        return {"__tensor__": prefix, "shape": list(arr.shape), "dtype": str(arr.dtype)}
    if isinstance(obj, np.ndarray):
        limits.tensors.charge(obj.nbytes, f"array '{prefix}' of shape {obj.shape}")
        tensors[prefix] = np.ascontiguousarray(obj)
        return {"__tensor__": prefix, "shape": list(obj.shape), "dtype": str(obj.dtype)}
    if isinstance(obj, _StatefulPlaceholder):
        return {"__skipped__": obj.qualname}
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            key = str(k)
            out[key] = _flatten(v, f"{prefix}/{key}" if prefix else key, tensors, notes, limits, depth + 1)
        return out
    if isinstance(obj, (list, tuple)):
        return [_flatten(v, f"{prefix}/{i}" if prefix else str(i), tensors, notes, limits, depth + 1)
                for i, v in enumerate(obj)]
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
        return [_flatten(v, prefix, tensors, notes, limits, depth + 1) for v in sorted(obj, key=repr)]
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
        limits = Limits(data_bytes(a.input)[0])
        as_limit = address_space_limit(a.input)
    except (OSError, zipfile.BadZipFile, ValueError) as e:
        print(f"UNREADABLE: {type(e).__name__}: {e}", file=sys.stderr)
        return 4
    capped = _cap_address_space(as_limit)
    try:
        tree, skipped = load(a.input, allow_numpy=a.allow_numpy, allow_config_objects=a.allow_config_objects,
                             select=a.select, limits=limits)
        if a.select is not None:
            if not isinstance(tree, dict) or a.select not in tree:
                keys = list(tree)[:20] if isinstance(tree, dict) else type(tree).__name__
                print(f"UNREADABLE: the checkpoint has no top-level key '{a.select}' (it has {keys})",
                      file=sys.stderr)
                return 4
            rest = {k: v for k, v in tree.items() if k != a.select}
            tensors: dict[str, np.ndarray] = {}
            notes: dict[str, str] = {}
            _flatten(tree[a.select], "", tensors, notes, limits)
            meta = _flatten(rest, "", {}, {}, limits)
        else:
            tensors, notes = {}, {}
            meta = _flatten(tree, "", tensors, notes, limits)
    except RefusedGlobal as e:
        print(f"REFUSED: {e}", file=sys.stderr)
        return 3
    except LimitExceeded as e:
        print(f"LIMIT: {e}", file=sys.stderr)
        return 5
    except MemoryError:
        what = f"the import worker's address-space limit of {as_limit >> 20} MB (RLIMIT_AS: mapped at start + " \
               f"{AS_HEADROOM >> 20} MB + {AS_PER_DATA_BYTE}x the file's data)" if capped else "the machine's memory"
        print(f"LIMIT: reading the file ran into {what}; it asks for more memory than its size justifies",
              file=sys.stderr)
        return 5
    except RecursionError:
        print(f"LIMIT: objects nested deeper than Python's recursion limit; not a checkpoint", file=sys.stderr)
        return 5
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError, KeyError,
            AttributeError, IndexError, OSError, OverflowError, UnicodeDecodeError) as e:
        print(f"UNREADABLE: {type(e).__name__}: {e}", file=sys.stderr)
        return 4
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
