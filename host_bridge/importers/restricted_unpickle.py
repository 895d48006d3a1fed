"""A restricted unpickler for torch checkpoints (``.pth`` / ``.pt``): data in, nothing executed.

Only these globals resolve:

- torch's tensor rebuild functions and ``torch.<Dtype>Storage`` markers; the tensor bytes are
  read by us from the zip archive (``<archive>/data.pkl`` + ``<archive>/data/<key>``) with
  :mod:`zipfile` and turned into numpy arrays — torch itself is never imported here;
- ``collections.OrderedDict`` and the plain containers/numbers (dict, list, tuple, set, int, float,
  complex, bool, str, bytes), ``_codecs.encode`` for latin-1 byte strings (pickle protocol 2);
- with ``allow_numpy``: numeric numpy arrays and scalars, rebuilt by us from their raw bytes;
- with ``allow_config_objects`` (fairseq encoder checkpoints): configuration classes
  (``argparse.Namespace``, ``omegaconf.*``, ``fairseq.*``, ``typing.*``) become inert
  :class:`Placeholder` objects that record their class name and are never constructed.

Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) raises
:class:`RefusedGlobal` naming it. Run this inside :mod:`host_bridge.importers.unpickle_worker`
so that even a bug here cannot reach the importing process.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES: dict[str, str] = {
    "FloatStorage": "<f4", "HalfStorage": "<f2", "BFloat16Storage": "bf16", "DoubleStorage": "<f8",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?", "UntypedStorage": "u1",
}

_SAFE_BUILTINS = {"dict": dict, "list": list, "tuple": tuple, "set": set, "frozenset": frozenset,
                  "int": int, "float": float, "complex": complex, "bool": bool, "str": str,
                  "bytes": bytes}
_CONFIG_PREFIXES = ("omegaconf", "fairseq", "typing")


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global that could run code; nothing was called."""


class Placeholder:
    """Inert stand-in for a configuration object; records its class, never runs its code."""

    def __init__(self, qualname: str) -> None:
        self.qualname = qualname

    def __repr__(self) -> str:
        return f"<skipped {self.qualname}>"


class _StatefulPlaceholder(Placeholder):
    """Base of the per-class placeholder types: accepts any constructor args and state, keeps none."""

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_StatefulPlaceholder":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:  # BUILD: keep nothing, run nothing
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<skipped {self.qualname}>"


def _placeholder_type(full: str) -> type:
    return type("Skipped_" + full.replace(".", "_"), (_StatefulPlaceholder,), {"qualname": full})


class _Storage:
    """A lazy view of one storage record inside the zip archive."""

    def __init__(self, archive: "_Archive", key: str, type_name: str, numel: int) -> None:
        self.archive, self.key, self.type_name, self.numel = archive, key, type_name, int(numel)

    def array(self) -> np.ndarray:
        raw = self.archive.read(self.key)
        code = _STORAGE_DTYPES[self.type_name]
        if code == "bf16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            return u.view(np.float32)
        return np.frombuffer(raw, dtype=np.dtype(code))


class LazyTensor:
    """A tensor described by (storage, offset, size, stride); ``numpy()`` materialises it."""

    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset = storage, int(offset)
        self.shape, self.stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
        self.was_bfloat16 = storage.type_name == "BFloat16Storage"

    def numpy(self) -> np.ndarray:
        flat = self.storage.array()
        n = int(np.prod(self.shape)) if self.shape else 1
        if n == 0:
            return np.zeros(self.shape, dtype=flat.dtype)
        last = self.offset + sum((s - 1) * st for s, st in zip(self.shape, self.stride))
        if self.offset < 0 or last >= flat.size or any(st < 0 for st in self.stride):
            raise pickle.UnpicklingError(
                f"tensor of shape {self.shape} reads past its storage '{self.storage.key}' "
                f"({flat.size} elements); the checkpoint is truncated or corrupt")
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.shape,
                                               strides=[st * flat.itemsize for st in self.stride])
        return np.array(view, copy=True)


class _Archive:
    def __init__(self, zf: zipfile.ZipFile, prefix: str) -> None:
        self.zf, self.prefix = zf, prefix

    def read(self, key: str) -> bytes:
        name = f"{self.prefix}/data/{key}"
        try:
            return self.zf.read(name)
        except KeyError:
            raise pickle.UnpicklingError(f"storage '{name}' is missing from the archive; the file is "
                                         f"truncated or corrupt") from None


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> LazyTensor:
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError("tensor without a storage record; not a torch zip checkpoint")
    return LazyTensor(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal(f"_codecs.encode called with {type(text).__name__}, {encoding!r}; only latin-1 "
                            f"strings (pickle protocol 2 bytes) are allowed")
    return text.encode("latin-1")


class _NpDType:
    """numpy.dtype(spec, align, copy) rebuilt from its spec; BUILD sets the byte order."""

    def __init__(self, spec: Any, *_: Any) -> None:
        if not isinstance(spec, str) or not spec or spec[0] not in "fiubc?" or not spec[1:].isdigit() and spec != "?":
            raise RefusedGlobal(f"numpy dtype {spec!r}: only numeric dtypes are allowed")
        self.spec, self.order = spec, "<"

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in "<>|=":
            self.order = "<" if state[1] in "=|" else state[1]

    def dtype(self) -> np.dtype:
        return np.dtype(self.spec if self.spec[0] in "?" else self.order + self.spec)


class _NpArray:
    """numpy.core.multiarray._reconstruct(ndarray, shape, b'b') + BUILD(state) -> array in .value."""

    def __init__(self) -> None:
        self.value: np.ndarray | None = None

    def __setstate__(self, state: Any) -> None:
        _, shape, dt, fortran, raw = state
        if not isinstance(dt, _NpDType) or not isinstance(raw, (bytes, bytearray)):
            raise RefusedGlobal("numpy array with object or structured data; only numeric arrays are allowed")
        arr = np.frombuffer(bytes(raw), dtype=dt.dtype())
        self.value = arr.reshape(shape, order="F" if fortran else "C").copy()


def _np_reconstruct(cls: Any, shape: Any, typecode: Any) -> _NpArray:
    if cls is not _NP_NDARRAY:
        raise RefusedGlobal("numpy _reconstruct of a class other than ndarray")
    return _NpArray()


def _np_scalar(dt: Any, raw: Any = b"") -> Any:
    if not isinstance(dt, _NpDType) or not isinstance(raw, (bytes, bytearray)):
        raise RefusedGlobal("numpy scalar with a non-numeric dtype")
    return np.frombuffer(bytes(raw), dtype=dt.dtype())[0].item()


_NP_NDARRAY = object()


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, archive: _Archive | None = None, *,
                 allow_numpy: bool = False, allow_config_objects: bool = False) -> None:
        super().__init__(file)
        self.archive = archive
        self.allow_numpy = allow_numpy
        self.allow_config_objects = allow_config_objects
        self.skipped: set[str] = set()

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return ("storage-type", name)
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _SAFE_BUILTINS[name]
        if module == "_codecs" and name == "encode":
            return _codecs_encode
        if self.allow_numpy and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            if name == "_reconstruct":
                return _np_reconstruct
            if name == "scalar":
                return _np_scalar
        if self.allow_numpy and module == "numpy" and name == "ndarray":
            return _NP_NDARRAY
        if self.allow_numpy and module == "numpy" and name == "dtype":
            return _NpDType
        if self.allow_config_objects and (full == "argparse.Namespace" or module.split(".")[0] in _CONFIG_PREFIXES):
            self.skipped.add(full)
            return _placeholder_type(full)
        raise RefusedGlobal(
            f"the pickle asks for '{full}', which is not plain data (it could run code when loaded); "
            f"refused, nothing was executed. Allowed: tensors, dicts, lists, numbers, strings"
            f"{', numpy arrays' if self.allow_numpy else ''}"
            f"{', fairseq/omegaconf config objects (skipped)' if self.allow_config_objects else ''}. "
            f"If this file should be a so-vits-svc/fairseq checkpoint it has been tampered with; get it "
            f"from a trusted source")

    def persistent_load(self, pid: Any) -> Any:
        if self.archive is None:
            raise pickle.UnpicklingError("persistent id in a plain pickle; not a torch checkpoint")
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unknown persistent id {str(pid)[:80]}; not a torch zip checkpoint")
        _, stype, key, _location, numel = pid
        if not (isinstance(stype, tuple) and stype[0] == "storage-type"):
            raise pickle.UnpicklingError(f"storage of unknown type {stype!r}")
        return _Storage(self.archive, str(key), stype[1], numel)


def _unwrap_numpy(obj: Any) -> Any:
    if isinstance(obj, _NpArray):
        return obj.value
    if isinstance(obj, dict):
        return type(obj)((k, _unwrap_numpy(v)) for k, v in obj.items()) if isinstance(obj, OrderedDict) \
            else {k: _unwrap_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unwrap_numpy(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_unwrap_numpy(v) for v in obj)
    return obj


def load(path: str | Path, *, allow_numpy: bool = False, allow_config_objects: bool = False,
         select: str | None = None) -> tuple[Any, set[str]]:
    """Unpickle ``path`` (torch zip checkpoint or plain pickle) under the restrictions above.

    select: read the tensor bytes only under this top-level key (e.g. "model"); tensors elsewhere
    (optimizer state) become the string "<tensor not read>".
    Returns (object tree with :class:`LazyTensor` leaves, set of skipped config class names).
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if not pkl:
                raise pickle.UnpicklingError(f"'{path}' is a zip archive without <name>/data.pkl; not a torch "
                                             f"checkpoint")
            prefix = pkl[0].rsplit("/", 1)[0]
            up = RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), _Archive(zf, prefix), allow_numpy=allow_numpy,
                                     allow_config_objects=allow_config_objects)
            obj = up.load()
            obj = _unwrap_numpy(obj)
            return _materialise_storages(obj, select), up.skipped
    with open(path, "rb") as f:
        up = RestrictedUnpickler(f, None, allow_numpy=allow_numpy, allow_config_objects=allow_config_objects)
        obj = up.load()
    if obj == LEGACY_MAGIC:
        raise pickle.UnpicklingError(
            f"'{path}' uses torch's legacy (pre-1.6) checkpoint format, which svc-host does not read; ask whoever "
            f"trained the voice for a checkpoint saved by torch 1.6 or newer (zip format), then import again")
    return _unwrap_numpy(obj), up.skipped


def _materialise_storages(obj: Any, select: str | None) -> Any:
    # the zip file closes on return: read the bytes of the tensors we keep now
    cache: dict[str, bytes] = {}

    def walk(o: Any, keep: bool = True) -> Any:
        if isinstance(o, LazyTensor):
            if not keep:
                return "<tensor not read>"

            st = o.storage
            if st.key not in cache:
                cache[st.key] = st.archive.read(st.key)
            st.archive = _BytesArchive(cache)
            return o
        if isinstance(o, OrderedDict):
            return OrderedDict((k, walk(v, keep)) for k, v in o.items())
        if isinstance(o, dict):
            return {k: walk(v, keep) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, keep) for v in o]
        if isinstance(o, tuple):
            return tuple(walk(v, keep) for v in o)
        return o

    if select is not None and isinstance(obj, dict):
        return {k: walk(v, k == select) for k, v in obj.items()}
    return walk(obj)


class _BytesArchive:
    def __init__(self, cache: dict[str, bytes]) -> None:
        self.cache = cache

    def read(self, key: str) -> bytes:
        return self.cache[key]
