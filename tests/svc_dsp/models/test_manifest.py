"""SHA256SUMS must cover every file the loader reads, and may only name files inside the folder."""
from __future__ import annotations

import os
import shutil

import pytest

from svc_dsp.errors import ManifestError
from svc_dsp.models.catalog import load_model
from svc_dsp.models.folder import MANIFEST_NAME, sha256_file, verify_manifest


def _copy(src, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(src, d)
    return d


def _sums(d, names):
    (d / MANIFEST_NAME).write_text("".join(f"{sha256_file(d / n)}  {n}\n" for n in names))


def test_empty_manifest_refused(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    (d / MANIFEST_NAME).write_text("")
    with pytest.raises(ManifestError, match="not listed"):
        load_model(d)


def test_tampered_unlisted_weights_refused(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    _sums(d, ["model.json"])  # weights left out, then changed
    w = d / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match=r"model\.safetensors.*not listed"):
        load_model(d)


def test_unlisted_weight_in_subfolder_refused(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    names = sorted(p.name for p in d.iterdir() if p.is_file() and p.name != MANIFEST_NAME)
    _sums(d, names)
    (d / "extra").mkdir()
    (d / "extra" / "model.onnx").write_bytes(b"\x08\x01")
    with pytest.raises(ManifestError, match=r"extra/model\.onnx.*not listed"):
        verify_manifest(d)


@pytest.mark.parametrize("entry", ["../outside.bin", "/etc/hostname", "sub/../../outside.bin", "link.bin"])
def test_entries_outside_the_folder_refused(random_model_dir, tmp_path, entry):
    d = _copy(random_model_dir, tmp_path)
    (tmp_path / "outside.bin").write_bytes(b"x")
    (d / "link.bin").symlink_to(tmp_path / "outside.bin")
    names = sorted(p.name for p in d.iterdir() if p.is_file() and p.name not in (MANIFEST_NAME, "link.bin"))
    _sums(d, names)
    target = tmp_path / "outside.bin" if entry != "/etc/hostname" else None
    digest = sha256_file(target) if target else "0" * 64
    with open(d / MANIFEST_NAME, "a") as f:
        f.write(f"{digest}  {entry}\n")
    with pytest.raises(ManifestError, match="outside"):
        verify_manifest(d)


def test_readme_may_stay_unlisted(random_model_dir, tmp_path):
    d = _copy(random_model_dir, tmp_path)
    (d / "README.txt").write_text("notes")
    (d / ".model.safetensors.123.partial").write_bytes(b"tmp")
    assert "model.safetensors" in verify_manifest(d)
