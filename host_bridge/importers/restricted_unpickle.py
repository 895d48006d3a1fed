"""A restricted unpickler for torch checkpoints (``.pth`` / ``.pt``): data in, nothing executed.

Only these globals resolve:

- torch's tensor rebuild functions and ``torch.<Dtype>Storage`` markers; the tensor bytes are
  read by us from the zip archive (``<archive>/data.pkl`` + ``<archive>/data/<key>``) with
  :mod:`zipfile` and turned into numpy arrays — torch itself is never imported here;
- ``collections.OrderedDict``, ``collections.defaultdict`` (its factory must itself be one of these
  globals; Lightning checkpoints hold one) and the plain containers/numbers (dict, list, tuple, set,
  int, float, complex, bool, str, bytes; protocol 2's ``__builtin__.long`` is int),
  ``_codecs.encode`` for latin-1 byte strings (pickle protocol 2);
- with ``allow_numpy``: numeric numpy arrays and scalars, rebuilt by us from their raw bytes;
- with ``allow_config_objects`` (fairseq encoder checkpoints): configuration classes
  (``argparse.Namespace``, ``omegaconf.*``, ``fairseq.*``, ``typing.*``) become inert
  :class:`Placeholder` objects that record their class name and are never constructed.

Anything else (``os.system``, ``builtins.eval``, ``subprocess.Popen`` ...) raises
:class:`RefusedGlobal` naming it.

Memory is bounded by the file (:class:`Limits`): objects built from the pickle (containers the
allowed callables make, and every walk over the tree, so shared references cannot fan out into a
"billion laughs") share a byte budget proportional to the pickle's size; a zip entry may not inflate
more than :data:`MAX_COMPRESSION_RATIO` times; a storage's declared size must equal its zip entry;
a tensor may not view more elements than its storage holds (stride-0 claims) beyond
:data:`SMALL_TENSOR_BYTES`, and all tensors together stay within a multiple of the stored data.
Each check runs before the allocation it guards and raises :class:`LimitExceeded` naming the limit.

Run this inside :mod:`host_bridge.importers.unpickle_worker` (which also caps its address space)
so that even a bug here cannot reach the importing process.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from host_bridge.importers.unpickle_limits import (NODE_COST, MAX_COMPRESSION_RATIO, MAX_NESTING,  # noqa: F401
                                                   SMALL_TENSOR_BYTES, Budget, LimitExceeded, Limits,
                                                   check_entry, format_mb)

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
        if self.numel < 0:
            raise pickle.UnpicklingError(f"storage '{key}' declares {self.numel} elements; the file is corrupt")

    @property
    def itemsize(self) -> int:
        code = _STORAGE_DTYPES[self.type_name]
        return 2 if code == "bf16" else np.dtype(code).itemsize

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
        self._check()

    @property
    def nbytes(self) -> int:
        """Bytes of the materialised array (bfloat16 becomes float32)."""
        n = int(np.prod(self.shape, dtype=object)) if self.shape else 1
        return n * (4 if self.was_bfloat16 else self.storage.itemsize)

    def _check(self) -> None:
        """Shape/stride against the storage, before anything is read or allocated."""
        if len(self.shape) != len(self.stride) or any(s < 0 for s in self.shape) or any(st < 0 for st in self.stride):
            raise pickle.UnpicklingError(f"tensor with shape {self.shape[:8]} and stride {self.stride[:8]}: negative "
                                         f"or mismatched sizes; the checkpoint is corrupt")
        n = int(np.prod(self.shape, dtype=object)) if self.shape else 1
        if n == 0:
            return
        last = self.offset + sum((s - 1) * st for s, st in zip(self.shape, self.stride))
        if self.offset < 0 or last >= self.storage.numel:
            raise pickle.UnpicklingError(
                f"tensor of shape {self.shape} reads past its storage '{self.storage.key}' "
                f"({self.storage.numel} elements); the checkpoint is truncated or corrupt")
        if n > self.storage.numel and self.nbytes > SMALL_TENSOR_BYTES:
            raise LimitExceeded(
                f"tensor of shape {self.shape} (stride {self.stride}) claims {n} elements ({format_mb(self.nbytes)}) from "
                f"a storage of {self.storage.numel}; expanded tensors are limited to {format_mb(SMALL_TENSOR_BYTES)}, "
                f"refused before allocating it")

    def numpy(self) -> np.ndarray:
        flat = self.storage.array()
        n = int(np.prod(self.shape)) if self.shape else 1
        if n == 0:
            return np.zeros(self.shape, dtype=flat.dtype)
        if flat.size < self.storage.numel:
            raise pickle.UnpicklingError(f"storage '{self.storage.key}' holds {flat.size} elements, the pickle "
                                         f"declares {self.storage.numel}; the checkpoint is truncated or corrupt")
        view = np.lib.stride_tricks.as_strided(flat[self.offset:], shape=self.shape,
                                               strides=[st * flat.itemsize for st in self.stride])
        return np.array(view, copy=True)


class _Archive:
    def __init__(self, zf: zipfile.ZipFile, prefix: str, limits: Limits | None = None) -> None:
        self.zf, self.prefix, self.limits = zf, prefix, limits
        self.declared: dict[str, int] = {}

    def _info(self, key: str) -> zipfile.ZipInfo:
        name = f"{self.prefix}/data/{key}"
        try:
            return self.zf.getinfo(name)
        except KeyError:
            raise pickle.UnpicklingError(f"storage '{name}' is missing from the archive; the file is "
                                         f"truncated or corrupt") from None

    def declare(self, storage: "_Storage") -> None:
        """Check a storage record against its zip entry before anything is read."""
        info = self._info(storage.key)
        want = storage.numel * storage.itemsize
        if info.file_size != want:
            raise pickle.UnpicklingError(
                f"storage '{info.filename}' declares {storage.numel} x {storage.itemsize} bytes = {want}, the "
                f"archive holds {info.file_size}; the checkpoint is truncated or corrupt")
        check_entry(info)
        if storage.key not in self.declared:
            self.declared[storage.key] = want
            if self.limits is not None:
                self.limits.storage_bytes += want

    def read(self, key: str) -> bytes:
        info = self._info(key)
        check_entry(info)
        return self.zf.read(info)


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


def _charged(fn: Any, limits: Limits) -> Any:
    """Wrap an allowed builtin: charge the memory its result can take before calling it."""
    name = getattr(fn, "__name__", "callable")

    def call(*args: Any) -> Any:
        cost = NODE_COST
        for a in args:
            if isinstance(a, bool):
                continue
            if isinstance(a, int):
                # bytes(n) / bytearray(n) allocate n bytes; other int args are cheap
                cost += max(a, 0) if fn in (bytes, bytearray) else 0
            elif hasattr(a, "__len__"):
                cost += NODE_COST * len(a) if fn in (list, tuple, set, frozenset, dict, OrderedDict) \
                    else 8 * len(a)
        limits.objects.charge(cost, f"{name}() in the pickle")
        return fn(*args)

    call.__name__ = name
    return call


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, archive: _Archive | None = None, *,
                 allow_numpy: bool = False, allow_config_objects: bool = False, limits: Limits | None = None) -> None:
        super().__init__(file)
        self.archive = archive
        self.allow_numpy = allow_numpy
        self.allow_config_objects = allow_config_objects
        self.skipped: set[str] = set()
        self.limits = limits if limits is not None else Limits(0)

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch._utils" and name in ("_rebuild_parameter", "_rebuild_parameter_with_state"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return ("storage-type", name)
        if module == "collections" and name == "OrderedDict":
            return _charged(OrderedDict, self.limits)
        if module == "collections" and name == "defaultdict":
            return defaultdict
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return _charged(_SAFE_BUILTINS[name], self.limits)
        if module == "__builtin__" and name == "long":
            return int
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
        if not isinstance(numel, int) or isinstance(numel, bool):
            raise pickle.UnpicklingError(f"storage '{str(key)[:40]}' with a size of type {type(numel).__name__}")
        st = _Storage(self.archive, str(key), stype[1], numel)
        if isinstance(self.archive, _Archive):
            self.archive.declare(st)
        return st


def _unwrap_numpy(obj: Any, limits: Limits, depth: int = 0) -> Any:
    limits.node(obj, depth)
    if isinstance(obj, _NpArray):
        return obj.value
    if isinstance(obj, dict):
        return type(obj)((k, _unwrap_numpy(v, limits, depth + 1)) for k, v in obj.items()) \
            if isinstance(obj, OrderedDict) else {k: _unwrap_numpy(v, limits, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unwrap_numpy(v, limits, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_unwrap_numpy(v, limits, depth + 1) for v in obj)
    return obj


def load(path: str | Path, *, allow_numpy: bool = False, allow_config_objects: bool = False,
         select: str | None = None, limits: Limits | None = None) -> tuple[Any, set[str]]:
    """Unpickle ``path`` (torch zip checkpoint or plain pickle) under the restrictions above.

    select: read the tensor bytes only under this top-level key (e.g. "model"); tensors elsewhere
    (optimizer state) become the string "<tensor not read>".
    limits: the budgets to charge (default: :func:`limits_for` the file); pass the same object to
    whatever walks the result next.
    Returns (object tree with :class:`LazyTensor` leaves, set of skipped config class names).
    Raises :class:`LimitExceeded` before any allocation that the file's size does not justify.
    """
    path = Path(path)
    limits = limits if limits is not None else limits_for(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] == b"PK":
        with zipfile.ZipFile(path) as zf:
            pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if not pkl:
                raise pickle.UnpicklingError(f"'{path}' is a zip archive without <name>/data.pkl; not a torch "
                                             f"checkpoint")
            prefix = pkl[0].rsplit("/", 1)[0]
            info = zf.getinfo(pkl[0])
            check_entry(info)
            with zf.open(info) as stream:
                up = RestrictedUnpickler(stream, _Archive(zf, prefix, limits), allow_numpy=allow_numpy,
                                         allow_config_objects=allow_config_objects, limits=limits)
                obj = up.load()
            obj = _unwrap_numpy(obj, limits)
            return _materialise_storages(obj, select, limits), up.skipped
    with open(path, "rb") as f:
        up = RestrictedUnpickler(f, None, allow_numpy=allow_numpy, allow_config_objects=allow_config_objects,
                                 limits=limits)
        obj = up.load()
    if obj == LEGACY_MAGIC:
        raise pickle.UnpicklingError(
            f"'{path}' uses torch's legacy (pre-1.6) checkpoint format, which svc-host does not read; ask whoever "
            f"trained the voice for a checkpoint saved by torch 1.6 or newer (zip format), then import again")
    return _unwrap_numpy(obj, limits), up.skipped


def data_bytes(path: str | Path) -> tuple[int, int]:
    """(pickle bytes, stored data bytes) of a checkpoint, from its size or zip directory; reads no entry.

    Each zip entry counts at most :data:`MAX_COMPRESSION_RATIO` x its compressed size (larger ones are
    refused when read)."""
    path = Path(path)
    size = path.stat().st_size
    if not zipfile.is_zipfile(path):
        return size, 0
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    capped = [min(i.file_size, max(MAX_COMPRESSION_RATIO * i.compress_size, 1 << 20)) for i in infos]
    pkl = sum(c for i, c in zip(infos, capped) if i.filename.endswith("/data.pkl"))
    return pkl, sum(capped) - pkl


def limits_for(path: str | Path) -> Limits:
    """The budgets for one file (see :class:`Limits`)."""
    return Limits(data_bytes(path)[0])


def _materialise_storages(obj: Any, select: str | None, limits: Limits) -> Any:
    # the zip file closes on return: read the bytes of the tensors we keep now
    cache: dict[str, bytes] = {}

    def walk(o: Any, keep: bool = True, depth: int = 0) -> Any:
        limits.node(o, depth)
        if isinstance(o, LazyTensor):
            if not keep:
                return "<tensor not read>"

            st = o.storage
            if st.key not in cache:
                cache[st.key] = st.archive.read(st.key)
            st.archive = _BytesArchive(cache)
            return o
        if isinstance(o, OrderedDict):
            return OrderedDict((k, walk(v, keep, depth + 1)) for k, v in o.items())
        if isinstance(o, dict):
            return {k: walk(v, keep, depth + 1) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(v, keep, depth + 1) for v in o]
        if isinstance(o, tuple):
            return tuple(walk(v, keep, depth + 1) for v in o)
        return o

    if select is not None and isinstance(obj, dict):
        return {k: walk(v, k == select, 1) for k, v in obj.items()}
    return walk(obj)


class _BytesArchive:
    def __init__(self, cache: dict[str, bytes]) -> None:
        self.cache = cache

    def read(self, key: str) -> bytes:
        return self.cache[key]
