"""``svc-host import index VOICE Index-<id>.index ...``: so-vits-svc feature-retrieval indices
(``export_index_for_onnx.py``'s faiss native files) into the voice's ``index.safetensors``.

The faiss file is read by our own parser (no faiss, nothing executed): ``IwFl`` (IndexIVFFlat,
so-vits' ``IVF<n>,Flat``) or a flat index (``IxF2`` / ``IxFI``). Layout (little-endian): fourcc;
header d (i32), ntotal (i64), two i64 dummies, is_trained (u8), metric (i32) [+ f32 argument when
metric > 1]; for IVF: nlist (u64), nprobe (u64), the coarse quantizer (a flat index, skipped), the
direct map (u8 type + u64 count + i64 ids [+ hashtable]), the inverted lists ``ilar``: nlist,
code size (u64 each), list sizes (``full``: u64 count + u64 sizes; ``sprs``: u64 count + (list,
size) u64 pairs), then per non-empty list its codes (n x code size bytes = float32 vectors) and
ids (n x i64). Every vector is put back at its id, giving the speaker's (N, D) bank; the file name's
id picks the speaker (so-vits keys indices by speaker id, the order of the voice's speakers).
"""
from __future__ import annotations

import argparse
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import ModelFormatError

__all__ = ["import_sovits_indices", "read_faiss_vectors"]

_MAX_BYTES = 4 << 30


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.b, self.pos, self.path = data, 0, path

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.b):
            raise ModelFormatError(f"'{self.path}' ends early (wanted {n} bytes at {self.pos} of {len(self.b)}); "
                                   f"not a complete faiss index")
        out = self.b[self.pos:self.pos + n]
        self.pos += n
        return out

    def u(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size))[0]


def _header(r: _Reader) -> tuple[int, int]:
    d, ntotal = r.u("i"), r.u("q")
    r.u("q"), r.u("q")
    r.u("B")
    metric = r.u("i")
    if metric > 1:
        r.u("f")
    if not (0 < d <= 65536 and 0 <= ntotal and ntotal * d * 4 <= _MAX_BYTES):
        raise ModelFormatError(f"'{r.path}': implausible index header (d={d}, ntotal={ntotal})")
    return d, ntotal


def _flat(r: _Reader, d: int, ntotal: int) -> np.ndarray:
    n = r.u("Q")                                  # count of 4-byte words
    if n != d * ntotal:
        raise ModelFormatError(f"'{r.path}': flat index holds {n} floats, header says {ntotal} x {d}")
    return np.frombuffer(r.take(4 * n), dtype="<f4").reshape(ntotal, d).copy()


def read_faiss_vectors(path: str | Path) -> np.ndarray:
    """All vectors of a faiss IndexIVFFlat / IndexFlat file, float32 (ntotal, d), in id order."""
    path = Path(path)
    if path.stat().st_size > _MAX_BYTES:
        raise ModelFormatError(f"'{path}' is larger than {_MAX_BYTES >> 30} GB; not a so-vits index")
    r = _Reader(path.read_bytes(), path)
    kind = r.take(4)
    if kind in (b"IxF2", b"IxFI"):
        d, ntotal = _header(r)
        return _flat(r, d, ntotal)
    if kind != b"IwFl":
        raise ModelFormatError(f"'{path}' is a faiss index of kind {kind!r}; svc-host reads IVF-Flat (so-vits' "
                               f"'IVF<n>,Flat') and flat indices")
    d, ntotal = _header(r)
    nlist, _nprobe = r.u("Q"), r.u("Q")
    qkind = r.take(4)
    if qkind not in (b"IxF2", b"IxFI"):
        raise ModelFormatError(f"'{path}': coarse quantizer of kind {qkind!r}; expected a flat one")
    qd, qn = _header(r)
    _flat(r, qd, qn)
    dm_type = r.u("B")
    r.take(8 * r.u("Q"))
    if dm_type == 2:                               # hashtable direct map: (id, offset) pairs
        r.take(16 * r.u("Q"))
    if r.take(4) != b"ilar":
        raise ModelFormatError(f"'{path}': inverted lists are not stored inline ('ilar'); re-export the index")
    nl, code_size = r.u("Q"), r.u("Q")
    if nl != nlist or code_size != 4 * d:
        raise ModelFormatError(f"'{path}': lists {nl} / code size {code_size} do not match nlist {nlist}, d {d} "
                               f"(only float32 Flat codes are read)")
    list_kind = r.take(4)
    sizes = np.zeros(nlist, dtype=np.int64)
    if list_kind == b"full":
        n = r.u("Q")
        sizes[:] = np.frombuffer(r.take(8 * n), dtype="<u8")[:nlist]
    elif list_kind == b"sprs":
        n = r.u("Q")
        pairs = np.frombuffer(r.take(8 * n), dtype="<u8").reshape(-1, 2)
        sizes[pairs[:, 0].astype(np.int64)] = pairs[:, 1]
    else:
        raise ModelFormatError(f"'{path}': unknown list-size encoding {list_kind!r}")
    if int(sizes.sum()) != ntotal:
        raise ModelFormatError(f"'{path}': lists hold {int(sizes.sum())} vectors, header says {ntotal}")
    out = np.zeros((ntotal, d), dtype=np.float32)
    seen = np.zeros(ntotal, dtype=bool)
    for n in sizes.tolist():
        if n == 0:
            continue
        codes = np.frombuffer(r.take(n * code_size), dtype="<f4").reshape(n, d)
        ids = np.frombuffer(r.take(8 * n), dtype="<i8")
        if ids.min() < 0 or ids.max() >= ntotal:
            raise ModelFormatError(f"'{path}': vector ids outside 0..{ntotal - 1}")
        out[ids] = codes
        seen[ids] = True
    if not seen.all():
        raise ModelFormatError(f"'{path}': {int((~seen).sum())} vector ids are missing")
    return out


def import_sovits_indices(voice: str | Path, files: list[str | Path], *, overwrite: bool = False) -> Path:
    """Read ``Index-<id>.index`` files and write them as the voice folder's index.safetensors."""
    from svc_dsp.models.folder import read_config
    from svc_dsp.models.retrieval import write_index

    folder = Path(voice)
    cfg = read_config(folder)
    speakers = list(cfg.get("speakers") or [])
    banks: dict[str, np.ndarray] = {}
    for f in files:
        m = re.search(r"(\d+)\.index$", Path(f).name)
        if not m:
            raise ModelFormatError(f"'{f}': expected so-vits' Index-<speaker id>.index naming, which says whose "
                                   f"index it is")
        sid = int(m.group(1))
        if sid >= len(speakers):
            raise ModelFormatError(f"'{f}' is for speaker id {sid}; voice '{folder}' has {len(speakers)} speakers "
                                   f"({', '.join(speakers)})")
        banks[speakers[sid]] = read_faiss_vectors(f)
    enc = cfg.get("content_encoder") or {}
    dim = enc.get("dim")
    for s, b in banks.items():
        if dim is not None and b.shape[1] != int(dim):
            raise ModelFormatError(f"index for '{s}' holds {b.shape[1]}-dim units; the voice's encoder gives {dim}")
    return write_index(folder, banks, {"source": "so-vits-svc faiss " + ", ".join(Path(f).name for f in files)},
                       overwrite=overwrite)


def add_index_import(subparsers: Any) -> None:
    p = subparsers.add_parser("index", help="so-vits-svc feature-retrieval Index-<id>.index files into a voice",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("voice", metavar="VOICE_DIR", help="the imported so-vits voice folder")
    p.add_argument("files", nargs="+", metavar="Index-ID.index")
    p.add_argument("--overwrite", action="store_true", help="replace an existing index.safetensors")
    p.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    path = import_sovits_indices(args.voice, args.files, overwrite=args.overwrite)
    print(f"wrote {path}")
    return 0
