"""Hostile checkpoints that try to exhaust memory: each is refused with one line naming the limit,
and the import (importing process + unpickle worker) stays under 1 GB peak RSS.

The files are built here, small on disk; none is committed. RSS is measured in a driver process:
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after the import ends (largest single process)
and the sum of VmRSS over the import's process tree sampled from ``/proc`` while it runs. The
sampler stops the import past 1.5 GB so a regression cannot take the machine down.
"""
from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from collections import OrderedDict
from pathlib import Path

import pytest

from tests.sovits.builders import sovits_config

ROOT = Path(__file__).resolve().parents[2]
LIMIT_KB = 1024 * 1024

_DRIVER = r"""
import json, os, resource, subprocess, sys, time

def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out

def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0

proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
peak, killed = 0, False
deadline = time.monotonic() + 300
while proc.poll() is None:
    pids = tree(proc.pid)
    total = sum(rss_kb(p) for p in pids)
    peak = max(peak, total)
    if total > 1536 * 1024 or time.monotonic() > deadline:
        killed = True
        for p in reversed(pids):
            try:
                os.kill(p, 9)
            except OSError:
                pass
    time.sleep(0.01)
out, err = proc.communicate()
print(json.dumps({"rc": proc.returncode, "stdout": out, "stderr": err, "peak_tree_kb": peak, "killed": killed,
                  "maxrss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _measure_import(pth: Path, cfg: Path, out: Path) -> dict:
    cmd = [sys.executable, "-c", _DRIVER, sys.executable, "-m", "host_bridge.cli", "import", "sovits",
           str(pth), str(cfg), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class _Reduce:
    def __init__(self, fn, args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _billion_laughs(path: Path) -> None:
    """Nine levels of ten references to the level below: a few hundred bytes, 10**9 leaves."""
    lol: object = ["lol"]
    for _ in range(9):
        lol = [lol] * 10
    path.write_bytes(pickle.dumps({"model": OrderedDict(), "x": lol}, protocol=2))


def _bytes_call(path: Path) -> None:
    """builtins.bytes(4 * 10**9): 4 GB of zeros asked for by a 50-byte pickle."""
    path.write_bytes(pickle.dumps({"model": OrderedDict(), "x": _Reduce(bytes, (4 * 10 ** 9,))}, protocol=2))


def _stride0(path: Path) -> None:
    """One stored float32 claimed as a (10**9,) tensor with stride 0."""
    import torch

    torch.save({"model": OrderedDict(w=torch.zeros(1).expand(10 ** 9))}, path)


def _deflate(head: bytes, n_zeros: int, tail: bytes) -> tuple[bytes, int]:
    """Raw deflate stream of head + n_zeros zero bytes (a multiple of 16 MiB) + tail, and its CRC.

    Each part ends with a full flush, so one compressed 16 MiB block of zeros can be repeated."""
    chunk = bytes(16 << 20)

    def part(data: bytes, last: bool = False) -> bytes:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        return c.compress(data) + (c.flush() if last else c.flush(zlib.Z_FULL_FLUSH))

    crc = zlib.crc32(head)
    for _ in range(n_zeros // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    return part(head) + part(chunk) * (n_zeros // len(chunk)) + part(tail, last=True), zlib.crc32(tail, crc)


def _write_zip(path: Path, entries: list[tuple[str, bytes, int, int, int]]) -> None:
    """entries: (name, stored bytes, compress type, crc, uncompressed size) -> a zip file."""
    body, central = b"", b""
    for name, data, ctype, crc, size in entries:
        nb = name.encode()
        central += struct.pack(zipfile.structCentralDir, zipfile.stringCentralDir, 20, 3, 20, 0, 0, ctype, 0, 0,
                               crc, len(data), size, len(nb), 0, 0, 0, 0, 0, len(body)) + nb
        body += struct.pack(zipfile.structFileHeader, zipfile.stringFileHeader, 20, 0, 0, ctype, 0, 0, crc,
                            len(data), size, len(nb), 0) + nb + data
    end = struct.pack(zipfile.structEndArchive, zipfile.stringEndArchive, 0, 0, len(entries), len(entries),
                      len(central), len(body), 0)
    path.write_bytes(body + central + end)


class _StorageRef:
    pass


def _torch_pickle(numel: int) -> bytes:
    """data.pkl of {"model": {"w": float32 tensor (numel,)}} whose storage is archive/data/0."""
    import io

    import torch

    ref = _StorageRef()

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", torch.FloatStorage, "0", "cpu", numel) if obj is ref else None

    t = _Reduce(torch._utils._rebuild_tensor_v2, (ref, 0, (numel,), (1,), False, OrderedDict()))
    buf = io.BytesIO()
    P(buf, protocol=2).dump({"model": OrderedDict(w=t)})
    return buf.getvalue()


def _storage_bomb(path: Path) -> None:
    """A deflated 2 GiB storage of zeros, consistent with its declared size: ~2 MB on disk."""
    n = 2 << 30
    pkl = _torch_pickle(n // 4)
    data, crc = _deflate(b"", n, b"")
    _write_zip(path, [("archive/data.pkl", pkl, zipfile.ZIP_STORED, zlib.crc32(pkl), len(pkl)),
                      ("archive/data/0", data, zipfile.ZIP_DEFLATED, crc, n)])


def _pickle_bomb(path: Path) -> None:
    """A deflated data.pkl holding one 2 GiB byte string (BINBYTES8)."""
    n = 2 << 30
    head = b"\x80\x04\x8e" + struct.pack("<Q", n)
    stream, crc = _deflate(head, n, b".")
    _write_zip(path, [("archive/data.pkl", stream, zipfile.ZIP_DEFLATED, crc, len(head) + n + 1)])


BOMBS = {"billion_laughs": _billion_laughs, "bytes_call": _bytes_call, "stride0": _stride0,
         "zip_storage_bomb": _storage_bomb, "zip_pickle_bomb": _pickle_bomb}


@pytest.mark.parametrize("name", list(BOMBS))
def test_memory_bomb_is_refused_within_1gb(tmp_path, name):
    pth = tmp_path / f"G_{name}.pth"
    BOMBS[name](pth)
    assert pth.stat().st_size < 4 << 20
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(sovits_config()), encoding="utf-8")
    r = _measure_import(pth, cfg, tmp_path / "out")
    assert not r["killed"], f"import grew past 1.5 GB (peak {r['peak_tree_kb'] // 1024} MB)"
    assert r["peak_tree_kb"] < LIMIT_KB and r["maxrss_children_kb"] < LIMIT_KB, r
    assert r["rc"] == 2, r
    lines = r["stderr"].strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r["stderr"], r["stderr"]
    assert "limit" in lines[0], lines[0]
    assert not (tmp_path / "out").exists()


def test_bomb_builders_make_readable_files(tmp_path):
    """The crafted zips are valid archives (headers, sizes, CRC) so the refusals test the limits."""
    for name in ("zip_storage_bomb", "zip_pickle_bomb"):
        p = tmp_path / f"{name}.pth"
        BOMBS[name](p)
        with zipfile.ZipFile(p) as zf:
            big = max(zf.infolist(), key=lambda i: i.file_size)
            assert big.file_size >= 2 << 30 and big.compress_size < 4 << 20
            with zf.open(big) as f:
                head = f.read(1 << 20)
            assert len(head) == 1 << 20


def test_small_expanded_tensor_and_shared_storage_still_import(tmp_path):
    """Within the limits: a small stride-0 tensor and aliases of one storage read back exactly."""
    import numpy as np
    import torch

    from host_bridge.importers.worker_client import unpickle_in_subprocess

    base = torch.randn(64, 64)
    p = tmp_path / "ok.pth"
    torch.save({"model": OrderedDict(e=torch.arange(3.0)[:1].expand(1000), a=base, b=base, t=base.t())}, p)
    r = unpickle_in_subprocess(p, select="model")
    assert np.array_equal(r.tensors["e"], np.zeros(1000, np.float32))
    assert np.array_equal(r.tensors["t"], base.t().numpy()) and np.array_equal(r.tensors["b"], base.numpy())


def test_worker_caps_its_address_space():
    """The backstop behind the budgets: past RLIMIT_AS an allocation fails with MemoryError."""
    code = ("from host_bridge.importers.unpickle_worker import _cap_address_space, _vm_size\n"
            "assert _cap_address_space(_vm_size() + (256 << 20))\n"
            "try:\n    bytearray(1 << 30)\nexcept MemoryError:\n    print('refused')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert r.stdout.strip() == "refused", r.stderr
