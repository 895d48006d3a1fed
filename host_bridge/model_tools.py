"""``svc-host merge`` and ``svc-host compress``: new voice folders made from existing ones.

merge: a weighted sum of every float tensor of two or more voices of the same architecture
(so-vits-svc's "static timbre mixing" / model fusion). Same family, same model.json architecture
(everything but name, training and provenance), same content encoder, same tensor names, shapes
and dtypes, same non-float tensors; otherwise refused with the first difference named. Weights:
one per voice (normalised to sum 1), or one fewer, the last voice taking the rest
(``--ratio 0.3`` for A B = 30 % A, 70 % B). Everything else (speakers, encoder, companion files)
comes from the first voice.

compress: drops training-only tensors (so-vits' posterior encoder ``enc_q.*``), and with
``--half`` stores float tensors as float16 (``--dtype bfloat16`` for bfloat16); the engine loads
them as float32 (svc_dsp.models.folder.load_tensors).

Both write an ordinary model folder (model.json, model.safetensors, SHA256SUMS, the source's other
files and sub-folders) through a temporary sibling that is renamed when complete; an existing
output is replaced only with ``--overwrite`` and never when it is one of the inputs.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from svc_dsp.errors import ModelFormatError, SvcError
from svc_dsp.models.folder import MANIFEST_NAME, load_tensors, read_config, sha256_file, verify_manifest
from svc_dsp.models.catalog import find_in_catalog
from svc_dsp.fileops import replace_dir

__all__ = ["add_model_tool_subcommands", "compress_model", "merge_models"]

WEIGHTS = "model.safetensors"
#: model.json keys that may differ between voices that are merged
_FREE_KEYS = {"name", "training", "provenance", "merged_from", "compressed", "description", "license"}
#: tensors only training reads, per family
TRAINING_ONLY_PREFIXES: dict[str, tuple[str, ...]] = {"sovits": ("enc_q.",)}


class ModelToolError(SvcError):
    """merge/compress refused its inputs."""


def _resolve(ref: str | Path) -> Path:
    p = Path(ref)
    if p.is_dir():
        return p

    return find_in_catalog("models", str(ref))


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    cfg = read_config(folder)
    if cfg.get("family") == "content-encoder":
        raise ModelToolError(f"'{folder}' is a content encoder, not a voice; merge/compress take voice folders")
    verify_manifest(folder)
    if not (folder / WEIGHTS).is_file():
        raise ModelFormatError(f"'{folder}' has no {WEIGHTS}")
    return cfg, load_tensors(folder / WEIGHTS)


def _raw_dtypes(folder: Path) -> dict[str, str]:
    with open(folder / WEIGHTS, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    return {k: v["dtype"] for k, v in header.items() if isinstance(v, dict) and "dtype" in v}


def _write(out: Path, source: Path, cfg: dict[str, Any], tensors: dict[str, np.ndarray], storage: str,
           overwrite: bool, inputs: Sequence[Path]) -> Path:
    """Assemble ``out`` from ``source``'s other files + new model.json/model.safetensors; atomic."""
    out = Path(out)
    for p in inputs:
        if out.resolve() == Path(p).resolve():
            raise ModelToolError(f"output '{out}' is one of the inputs; write to a new folder")
    if out.exists() and not overwrite:
        raise ModelToolError(f"'{out}' already exists; choose another output folder or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        for item in source.iterdir():
            if item.name in (WEIGHTS, "model.json", MANIFEST_NAME) or item.name.startswith("."):
                continue
            if item.is_dir():
                shutil.copytree(item, tmp / item.name)
            else:
                shutil.copy2(item, tmp / item.name)
        (tmp / "model.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        if storage == "bfloat16":
            import torch
            from safetensors.torch import save_file as save_torch

            save_torch({k: (torch.from_numpy(np.ascontiguousarray(v)).to(torch.bfloat16)
                            if v.dtype.kind == "f" else torch.from_numpy(np.ascontiguousarray(v)))
                        for k, v in tensors.items()}, str(tmp / WEIGHTS))
        else:
            from safetensors.numpy import save_file

            dt = np.float16 if storage == "float16" else None
            save_file({k: np.ascontiguousarray(v.astype(dt) if dt is not None and v.dtype.kind == "f" else v)
                       for k, v in tensors.items()}, str(tmp / WEIGHTS))
        for p in tmp.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        tmp.chmod(0o755)
        names = sorted(p.name for p in tmp.iterdir() if p.is_file())
        (tmp / MANIFEST_NAME).write_text("".join(f"{sha256_file(tmp / n)}  {n}\n" for n in names), encoding="utf-8")
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _parse_ratios(text: str | Sequence[float] | None, n: int) -> list[float]:
    if text is None:
        vals: list[float] = []
    elif isinstance(text, str):
        try:
            vals = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ModelToolError(f"--ratio {text!r}: give numbers separated by commas, e.g. 0.5 or 0.5,0.3") from None
    else:
        vals = [float(v) for v in text]
    if not vals:
        vals = [1.0 / n] * n
    if len(vals) == n - 1:
        vals = vals + [1.0 - sum(vals)]
    if len(vals) != n or any(not np.isfinite(v) or v < 0 for v in vals) or sum(vals) <= 0:
        raise ModelToolError(f"--ratio {text!r} for {n} voices: give {n} non-negative weights (normalised to sum 1) "
                             f"or {n - 1} in 0..1 (the last voice takes the rest), e.g. --ratio 0.5")
    s = sum(vals)
    return [v / s for v in vals]


def _architecture(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in _FREE_KEYS}


def merge_models(inputs: Sequence[str | Path], out: str | Path, ratios: str | Sequence[float] | None = None, *,
                 overwrite: bool = False) -> Path:
    """Weighted sum of voices ``inputs`` (folders or catalog names) written to ``out``."""
    if len(inputs) < 2:
        raise ModelToolError(f"merge needs at least two voices; received {len(inputs)}")
    folders = [_resolve(i) for i in inputs]
    w = _parse_ratios(ratios, len(folders))
    base_cfg, base = _read(folders[0])
    base_dt = _raw_dtypes(folders[0])
    acc = {k: v.astype(np.float64) * w[0] if v.dtype.kind == "f" else v for k, v in base.items()}
    for f, wi in zip(folders[1:], w[1:]):
        cfg, t = _read(f)
        a, b = _architecture(base_cfg), _architecture(cfg)
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                raise ModelToolError(
                    f"cannot merge '{folders[0]}' and '{f}': model.json '{key}' differs ({str(a.get(key))[:80]} vs "
                    f"{str(b.get(key))[:80]}); merge needs voices of the same architecture, encoder and speakers")
        if set(t) != set(base):
            extra = sorted(set(t) ^ set(base))[:3]
            raise ModelToolError(f"cannot merge '{folders[0]}' and '{f}': their tensors differ ({', '.join(extra)} ...); "
                                 f"compress both the same way first")
        dt = _raw_dtypes(f)
        for k, v in t.items():
            if v.shape != base[k].shape:
                raise ModelToolError(f"cannot merge '{folders[0]}' and '{f}': tensor {k} has shape {v.shape} vs "
                                     f"{base[k].shape}")
            if v.dtype.kind == "f":
                acc[k] = acc[k] + v.astype(np.float64) * wi
            elif not np.array_equal(v, base[k]):
                raise ModelToolError(f"cannot merge '{folders[0]}' and '{f}': integer tensor {k} differs")
            if dt.get(k) != base_dt.get(k):
                raise ModelToolError(f"cannot merge '{folders[0]}' ({base_dt.get(k)}) and '{f}' ({dt.get(k)}): "
                                     f"tensor {k} is stored differently; merge uncompressed voices")
    tensors = {k: v.astype(base[k].dtype) if base[k].dtype.kind == "f" else v for k, v in acc.items()}
    cfg = dict(base_cfg)
    cfg["name"] = Path(out).name
    cfg["merged_from"] = [{"name": read_name, "sha256": sha256_file(f / WEIGHTS), "weight": wi}
                          for f, wi, read_name in zip(folders, w, [_read_name(f) for f in folders])]
    storage = {"F16": "float16", "BF16": "bfloat16"}.get(next(iter(base_dt.values()), ""), "float32")
    return _write(Path(out), folders[0], cfg, tensors, storage, overwrite, folders)


def _read_name(folder: Path) -> str:
    return str(read_config(folder).get("name", folder.name))


def compress_model(inp: str | Path, out: str | Path, *, dtype: str | None = None, overwrite: bool = False) -> Path:
    """Drop training-only tensors; ``dtype`` "float16"/"bfloat16" stores float tensors at half size."""
    if dtype not in (None, "float32", "float16", "bfloat16"):
        raise ModelToolError(f"--dtype {dtype!r}; allowed: float16, bfloat16 (or none for float32)")
    folder = _resolve(inp)
    cfg, t = _read(folder)
    prefixes = TRAINING_ONLY_PREFIXES.get(str(cfg.get("family")), ())
    kept = {k: v for k, v in t.items() if not k.startswith(prefixes)} if prefixes else dict(t)
    cfg = dict(cfg)
    cfg["compressed"] = {"from": str(cfg.get("name")), "dropped_tensors": len(t) - len(kept),
                         "storage_dtype": dtype or "float32"}
    cfg["name"] = Path(out).name
    return _write(Path(out), folder, cfg, kept, dtype or "float32", overwrite, [folder])


def add_model_tool_subcommands(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("merge", help="mix voices of the same architecture into a new voice folder",
                       description=__doc__.split("\n\n")[1])
    m.add_argument("voices", nargs="+", metavar="VOICE", help="model folders or catalog names (two or more)")
    m.add_argument("--ratio", default=None, metavar="R[,R...]",
                   help="weights: one per voice, or one fewer (the last takes the rest); default equal")
    m.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    m.add_argument("--overwrite", action="store_true", help="replace OUTDIR if it exists")
    m.set_defaults(func=_cmd_merge)
    c = sub.add_parser("compress", help="drop training-only tensors; --half stores float16",
                       description=__doc__.split("\n\n")[2])
    c.add_argument("voice", metavar="VOICE", help="model folder or catalog name")
    c.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    c.add_argument("--half", action="store_true", help="store float tensors as float16")
    c.add_argument("--dtype", choices=("float16", "bfloat16"), default=None, help="half-size storage type")
    c.add_argument("--overwrite", action="store_true", help="replace OUTDIR if it exists")
    c.set_defaults(func=_cmd_compress)


def _cmd_merge(args: argparse.Namespace) -> int:
    out = merge_models(args.voices, args.output, args.ratio, overwrite=args.overwrite)
    print(f"merged {len(args.voices)} voices into {out}")
    return 0


def _cmd_compress(args: argparse.Namespace) -> int:
    dtype = args.dtype or ("float16" if args.half else None)
    out = compress_model(args.voice, args.output, dtype=dtype, overwrite=args.overwrite)
    print(f"wrote {out} ({sum(p.stat().st_size for p in out.iterdir() if p.is_file()) / 1e6:.1f} MB)")
    return 0
