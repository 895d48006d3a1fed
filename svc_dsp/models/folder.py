"""Model folders on disk: ``model.json`` + ``*.safetensors`` + ``SHA256SUMS``.

The engine never unpickles. Weights are read only from safetensors files whose
header has been checked; anything that looks like a pickle or a torch zip
archive is refused with a message that says how to import it safely.
Folders are written to a temporary sibling and renamed when complete.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from svc_dsp.errors import ManifestError, ModelFormatError, PickleRefusedError
from svc_dsp.fileops import replace_dir, sha256_file  # noqa: F401  (sha256_file re-exported)
from svc_dsp.models.schema import MAX_DEPTH, Field, check, describe, nesting_depth

CONFIG_NAME = "model.json"
MANIFEST_NAME = "SHA256SUMS"
FORMAT_NAME = "svc-host-model"
FORMAT_VERSION = 1




MAX_CONFIG_BYTES = 16 << 20


def _int(lo: int, hi: int, **kw: Any) -> Field:
    return Field("int", lo=lo, hi=hi, **kw)


def _num(lo: float, hi: float, **kw: Any) -> Field:
    return Field("number", lo=lo, hi=hi, **kw)


# sizes that become allocations: bounded so a wrong value is refused, not a 1.6 GB weight matrix
_SIZES: dict[str, Field] = {
    "channels": _int(1, 2048), "kernel_size": _int(1, 64), "dim": _int(1, 4096), "n_mels": _int(1, 512),
    "speaker_dim": _int(1, 2048), "n_harmonics": _int(1, 1024), "n_noise_bands": _int(1, 1024),
    "n_envelope": _int(1, 4096), "n_layers": _int(1, 128), "heads": _int(1, 128), "n_classes": _int(0, 100_000),
    "output_layer": _int(0, 128), "delay_frames": _int(0, 10_000), "noise_seed": Field("int"),
    "dilations": Field("list", items=_int(1, 4096), min_len=1, max_len=64),
    "hop_seconds": _num(1e-4, 1.0), "win_seconds": _num(1e-4, 1.0), "frame_seconds": _num(1e-4, 1.0),
    "fmin": _num(0, 96_000), "fmax": _num(0, 96_000),
}
_FIX = "fix model.json or re-export the model"
MODEL_SCHEMA: dict[str, Field] = {
    "format": Field("str", required=True, choices=(FORMAT_NAME,)),
    "format_version": _int(1, 1 << 31, required=True, hint=_FIX),
    "family": Field("str", required=True, min_len=1, max_len=64),
    "name": Field("str", max_len=256),
    "kind": Field("str", max_len=64),
    "sample_rate": _int(8000, 192_000, hint=_FIX),
    "hop_size": _int(1, 16_384, hint=_FIX),
    "speakers": Field("list", items=Field("str", min_len=1, max_len=256), max_len=10_000),
    "f0_range": Field("list", items=_num(1.0, 20_000.0), min_len=2, max_len=2),
    "content_encoder": Field("dict"),
    "architecture": Field("dict", fields=_SIZES),
    **_SIZES,
}
_VOICE_REQUIRED = ("sample_rate", "hop_size")  # every family but content encoders


def validate_config(cfg: Any, where: str) -> dict[str, Any]:
    """Check a parsed model.json against :data:`MODEL_SCHEMA`; ModelFormatError lists every problem."""
    if not isinstance(cfg, dict):
        raise ModelFormatError(f"'{where}' holds {describe(cfg)}, not a JSON object; {_FIX}")
    if nesting_depth(cfg) > MAX_DEPTH:
        raise ModelFormatError(f"'{where}' nests deeper than {MAX_DEPTH} levels; not a model.json")
    problems = check(cfg, MODEL_SCHEMA)
    if cfg.get("family") != "content-encoder":
        problems += [f"{k} is missing; expected an integer; {_FIX}" for k in _VOICE_REQUIRED if k not in cfg]
    fv = cfg.get("format_version")
    if isinstance(fv, int) and not isinstance(fv, bool) and fv > FORMAT_VERSION:
        problems.append(f"format_version {fv} is newer than this svc-host understands ({FORMAT_VERSION}); "
                        f"upgrade svc-host")
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ModelFormatError(f"'{where}' has {len(problems)} problem(s):\n{lines}{more}")
    return cfg


def read_config(folder: str | os.PathLike) -> dict[str, Any]:
    """Read ``folder/model.json`` and validate it (:func:`validate_config`): one line per problem."""
    folder = Path(folder)
    path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise ModelFormatError(
            f"model folder '{folder}' does not exist or is not a folder; pass a folder that holds "
            f"{CONFIG_NAME} (so-vits-svc .pth files come in through 'svc-host import sovits')")
    if not path.is_file():
        raise ModelFormatError(
            f"'{folder}' has no {CONFIG_NAME}; a model folder holds {CONFIG_NAME}, *.safetensors and "
            f"{MANIFEST_NAME}. Foreign checkpoints: run 'svc-host import sovits G.pth config.json -o DIR'")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ModelFormatError(f"'{path}' is {path.stat().st_size} bytes; a model.json is at most "
                               f"{MAX_CONFIG_BYTES >> 20} MB")
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ModelFormatError(f"'{path}' is not UTF-8 text (byte {e.start}); re-export the model") from None
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"'{path}' is not valid JSON ({e}); re-export the model") from None
    except RecursionError:
        raise ModelFormatError(f"'{path}' nests deeper than the JSON reader allows; not a model.json") from None
    return validate_config(cfg, str(path))


# files a loader may read: each must be listed in SHA256SUMS (README, LICENSE files may stay unlisted)
LOADED_SUFFIXES = frozenset({".safetensors", ".onnx", ".json", ".data", ".bin", ".npy", ".npz", ".pt", ".pth",
                             ".ckpt", ".pkl", ".index", ".model", ".ort"})


def _inside(folder: Path, name: str) -> Path:
    """``folder/name`` if ``name`` is a plain relative path that stays inside ``folder`` (symlinks resolved)."""
    p = Path(name)
    if not name or p.is_absolute() or ".." in p.parts or "\\" in name or "\x00" in name:
        raise ManifestError(f"'{folder}': {MANIFEST_NAME} names '{name[:80]}', a path outside the folder; entries "
                            f"must be plain relative names. The manifest was tampered with: re-copy the model")
    full = (folder / p).resolve()
    if full != folder and folder not in full.parents:
        raise ManifestError(f"'{folder}': {MANIFEST_NAME} entry '{name}' leads outside the folder (through a "
                            f"symlink); refused. Re-copy the model folder without links")
    return full


def verify_manifest(folder: str | os.PathLike) -> dict[str, str]:
    """Check SHA256SUMS: every entry inside the folder and matching, every loadable file listed.

    Returns {name: sha256}. A missing manifest, an entry outside the folder (``..``, absolute, a
    symlink out), a listed file that is missing, a hash mismatch, or a file the loader may read
    (:data:`LOADED_SUFFIXES`, in any subfolder, hidden temp files aside) that is not listed raise
    ManifestError. A subfolder with its own SHA256SUMS (a bundled encoder) is checked when it is loaded.
    """
    folder = Path(folder).resolve()
    mpath = folder / MANIFEST_NAME
    if not mpath.is_file():
        raise ManifestError(f"'{folder}' has no {MANIFEST_NAME}; the folder is incomplete or was not "
                            f"written by svc-host. Re-export or re-import the model.")
    sums: dict[str, str] = {}
    try:
        text = mpath.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ManifestError(f"'{mpath}' is not UTF-8 text; re-copy the model folder") from None
    for line in text.splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        sums[name.strip()] = digest.strip()
    for name, digest in sums.items():
        p = _inside(folder, name)
        if not p.is_file():
            raise ManifestError(f"'{folder}': {MANIFEST_NAME} lists '{name}' but the file is missing")
        actual = sha256_file(p)
        if actual != digest:
            raise ManifestError(
                f"'{p}': sha256 is {actual[:16]}..., the manifest says {digest[:16]}...; the file is "
                f"corrupt or was changed after export. Re-copy the model folder.")
    listed = {Path(n).as_posix() for n in sums}
    for root, dirs, files in os.walk(folder):
        # a subfolder with its own manifest (a bundled encoder) is a model folder checked by its loader
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (Path(root) / d / MANIFEST_NAME).is_file())
        for fname in sorted(files):
            rel = (Path(root) / fname).relative_to(folder).as_posix()
            if fname.startswith(".") or rel == MANIFEST_NAME or Path(fname).suffix.lower() not in LOADED_SUFFIXES:
                continue
            if rel not in listed:
                raise ManifestError(
                    f"'{folder}': '{rel}' is not listed in {MANIFEST_NAME}, so its integrity cannot be checked "
                    f"(every weight and config file must be listed); re-export or re-import the model, or "
                    f"remove the file if it does not belong there")
    return sums


def _check_safetensors_header(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(16)
    # a safetensors header length can start with 0x80 0x0N too; its 9th byte is always "{"
    if head[:2] == b"PK" or (len(head) > 1 and head[0] == 0x80 and head[1] <= 5 and head[8:9] != b"{"):
        raise PickleRefusedError(
            f"'{path}' is a pickle/torch checkpoint, not safetensors (it may run code when loaded, so "
            f"svc-host never opens it). Import it safely with 'svc-host import sovits FILE.pth "
            f"config.json -o MODEL_DIR'.")
    if len(head) < 9:
        raise ModelFormatError(f"'{path}' is {len(head)} bytes long; not a safetensors file")
    (n,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or n > os.path.getsize(path):
        raise ModelFormatError(f"'{path}' does not start with a safetensors header; re-export the model")
    return n


def load_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a safetensors file as numpy arrays after checking it is not a pickle.

    Tensors stored as float16 or bfloat16 (``svc-host compress --half``) come back as float32, so
    every family computes in float32 whatever the storage; other dtypes are returned as stored.
    """
    path = Path(path)
    n = _check_safetensors_header(path)
    try:
        with open(path, "rb") as f:
            f.seek(8)
            header = json.loads(f.read(n))
        if any(isinstance(v, dict) and v.get("dtype") == "BF16" for v in header.values()):
            from safetensors.torch import load_file as load_torch

            return {k: (v.float() if v.is_floating_point() else v).numpy() for k, v in load_torch(str(path)).items()}
        from safetensors.numpy import load_file

        out = load_file(str(path))
    except Exception as e:  # safetensors raises its own types
        raise ModelFormatError(f"'{path}' could not be read as safetensors: {e}") from None
    return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in out.items()}


def check_shapes(tensors: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], where: str) -> None:
    """Raise WeightMismatchError naming the first missing, unexpected or mis-shaped tensor."""
    from svc_dsp.errors import WeightMismatchError

    for name, shape in expected.items():
        if name not in tensors:
            raise WeightMismatchError(f"{where}: tensor '{name}' is missing (expected shape {tuple(shape)}); "
                                      f"the weights do not belong to this config")
        got = tuple(tensors[name].shape)
        if got != tuple(shape):
            raise WeightMismatchError(f"{where}: tensor '{name}' has shape {got}, the config implies "
                                      f"{tuple(shape)}; the weights do not belong to this config")
    for name in tensors:
        if name not in expected:
            raise WeightMismatchError(f"{where}: unexpected tensor '{name}' (shape {tuple(tensors[name].shape)}); "
                                      f"the weights do not belong to this config")


def write_model_folder(folder: str | os.PathLike, config: Mapping[str, Any],
                       weights: Mapping[str, Mapping[str, np.ndarray]],
                       extra_files: Mapping[str, bytes] | None = None, *, overwrite: bool = False) -> Path:
    """Write a complete model folder atomically.

    weights: {file name (e.g. "model.safetensors"): {tensor name: array}}.
    The folder is assembled under a temporary sibling name and renamed into place.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise ModelFormatError(f"'{folder}' already exists; choose another output folder or pass overwrite")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
    try:
        cfg = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **dict(config)}
        (tmp / CONFIG_NAME).write_text(json.dumps(cfg, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        for fname, tensors in weights.items():
            arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
            save_file(arrays, str(tmp / fname))
        for fname, data in (extra_files or {}).items():
            (tmp / fname).write_bytes(data)
        names = sorted(p.name for p in tmp.iterdir() if p.is_file())
        lines = [f"{sha256_file(tmp / n)}  {n}" for n in names]
        (tmp / MANIFEST_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
