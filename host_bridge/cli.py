"""The ``svc-host`` command line. Thin: one subcommand per stage, heavy imports
(torch, onnxruntime) only inside the commands that need them, so ``--help`` is instant.

Parameter flags are generated from the parameter table (svc_dsp.engine.parameters).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from svc_dsp.engine.parameters import PARAMETERS

DEFAULT_PRESET = "demo"
# so-vits-svc flags users already type -> our parameters
_SHORT_FLAGS = {"transpose": ["-t"], "speaker": ["-s"], "f0_method": ["-f0p"], "cluster_ratio": ["-cr"]}

RENDER_EPILOG = """\
channels:
  mono      converted as is.
  stereo / more channels
            the voice is converted once from the average of all channels and written
            to every channel (centred); with --mix below 1 the dry part keeps each
            channel's own signal. Output has the input's channel count.
output:     same sample rate, channel count, length and sample format (PCM_16/24/32,
            FLOAT ...) as the input unless --subtype says otherwise; integer formats
            clip at full scale and the summary reports how many samples clipped.
so-vits-svc words: -t/--transpose (semitones), -s/--speaker, -f0p/--f0-method,
  -lea X (loudness envelope adjustment) = --loudness-match 1-X
  (so-vits: 1 keeps the output's own envelope; ours: 1 follows the input's).
"""


def _add_param_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("parameters (the same names as in presets, OSC and the Python API)")
    for prm in PARAMETERS.values():
        flags = [f"--{prm.name.replace('_', '-')}"] + _SHORT_FLAGS.get(prm.name, [])
        kw: dict[str, Any] = {"dest": prm.name, "default": None}
        unit = "" if prm.unit == "%" else f" {prm.unit}"
        rng = f" [{prm.minimum:g}..{prm.maximum:g}{unit}]" if prm.kind == "float" else ""
        if prm.kind == "float":
            kw.update(type=float, metavar="X")
        elif prm.kind == "bool":
            kw.update(action="store_const", const=True)
        elif prm.kind == "choice":
            kw.update(choices=prm.choices)
        elif prm.kind == "mix":
            kw.update(type=_parse_mix, metavar="NAME=W,...")
        else:
            kw.update(metavar="NAME")
        text = f"{prm.doc}{rng}{_default_text(prm)}"
        g.add_argument(*flags, help=text.replace("%", "%%"), **kw)
    g.add_argument("-lea", "--loudness-envelope-adjustment", dest="lea", type=float, default=None, metavar="X",
                   help="so-vits-svc's -lea (0..1, 1 = output's own envelope); sets loudness_match = 1 - X")


def _default_text(prm: Any) -> str:
    """' (default: X)' in the flag's own terms: 0..1 values as typed on the command line (not as a
    percentage), nothing when there is no fixed default (the doc says what happens then)."""
    if prm.default is None:
        return ""
    if prm.kind == "float" and prm.unit == "%":
        return f" (default: {prm.default:g})"
    return f" (default: {prm.to_text(prm.default)})"


def _parse_mix(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        if not name or not w:
            raise argparse.ArgumentTypeError(f"speaker mix '{text}': write NAME=WEIGHT,NAME=WEIGHT")
        try:
            out[name.strip()] = float(w)
        except ValueError:
            raise argparse.ArgumentTypeError(f"speaker mix '{text}': weight '{w}' is not a number") from None
    return out


def _parse_cc(text: str) -> tuple[int, str]:
    num, _, name = text.partition("=")
    if not num.strip().isdigit() or not 0 <= int(num) <= 127 or name.strip() not in PARAMETERS:
        raise argparse.ArgumentTypeError(f"--cc {text!r}: write N=PARAM with N in 0..127 and PARAM one of "
                                         f"{', '.join(PARAMETERS)}")
    return int(num), name.strip()


def _automation_from_args(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from svc_dsp.errors import PresetError

    if not args.automation:
        if args.cc:
            raise PresetError("--cc maps MIDI CC lanes of an --automation FILE.mid; pass --automation too")
        return None
    from host_bridge.automation import AutomationFile

    auto = AutomationFile(args.automation, dict(args.cc))
    if not Path(args.automation).is_file():
        raise PresetError(f"--automation '{args.automation}': no such file")
    auto.lanes(44100)  # fail now, once, with the file's problem (lanes are re-read per file's rate)
    return auto


def _params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    params = {n: getattr(args, n) for n in PARAMETERS if getattr(args, n, None) is not None}
    if getattr(args, "lea", None) is not None:
        params["loudness_match"] = 1.0 - float(args.lea)
    return params


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="svc-host", description="Singing-voice conversion for DAW work.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")

    r = sub.add_parser("render", help="convert files or folders of stems", epilog=RENDER_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files or folders (walked recursively)")
    r.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder (tree kept)")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--preset", metavar="NAME", help=f"catalog preset or .toml file (default: {DEFAULT_PRESET})")
    src.add_argument("--model", metavar="DIR|NAME",
                     help="model folder (a path: ./voice, ~/voices/alto) or catalog name (bare: demo; never a "
                          "folder of that name in the current directory)")
    r.add_argument("--jobs", type=int, default=1, metavar="N", help="files rendered in parallel (processes)")
    r.add_argument("--threads", type=int, default=1, metavar="N", help="compute threads per job (default 1)")
    from host_bridge.cluster import add_cluster_arguments  # argparse only; Dask loads when a batch runs

    add_cluster_arguments(r)
    ex = r.add_mutually_exclusive_group()
    ex.add_argument("--overwrite", dest="existing", action="store_const", const="overwrite",
                    help="replace existing outputs")
    ex.add_argument("--skip-existing", dest="existing", action="store_const", const="skip",
                    help="leave existing outputs alone (default)")
    r.add_argument("--subtype", metavar="FMT", help="output sample format, e.g. PCM_24 or FLOAT (default: input's)")
    r.add_argument("--allow-truncated", action="store_true",
                   help="render files shorter than their header says (an interrupted copy) with a warning that "
                        "names the missing duration, instead of failing them")
    r.add_argument("--json", dest="json_report", metavar="FILE", help="also write the report as JSON")
    r.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bars (they are drawn only when stderr is a terminal)")
    r.add_argument("--dry-run", action="store_true",
                   help="plan the batch and check every file and option; print what would be written, write nothing")
    r.add_argument("--report", metavar="DIR",
                   help="also write a picture per rendered file (pitch on a note grid, loudness, spectrograms, "
                        "clipping and gated regions) and DIR/index.html listing them")
    r.add_argument("--automation", metavar="FILE.json|FILE.mid",
                   help="sample-accurate parameter automation: JSON lanes {\"transpose\": [[sample, value], ...]} "
                        "or a MIDI file's CC lanes (map them with --cc); values are steps, smoothed by the engine")
    r.add_argument("--cc", action="append", default=[], metavar="N=PARAM", type=_parse_cc,
                   help="map MIDI CC number N (0..127 -> the parameter's range) to PARAM; repeat per lane")
    _add_param_flags(r)
    r.set_defaults(func=cmd_render, existing="skip")

    sv = sub.add_parser("serve", help="live server: streaming engine + OSC + MIDI (+ JACK/PortAudio audio)",
                        description="Run the streaming engine under OSC/MIDI control; prints its latency. "
                                    "OSC address space: docs/osc.md")
    from host_bridge.server.app import add_serve_arguments  # argparse only; no heavy imports

    add_serve_arguments(sv)
    _add_param_flags(sv)
    sv.set_defaults(func=cmd_serve)

    m = sub.add_parser("models", help="list catalog models, encoders and presets")
    m.set_defaults(func=cmd_models)

    from host_bridge.importers.cli import add_import_subcommands
    from training.cli import add_train_subcommands

    t = sub.add_parser("train", help="prepare -> features -> fit -> export a voice model")
    add_train_subcommands(t.add_subparsers(dest="stage", metavar="STAGE", required=True))
    imp = sub.add_parser("import", help="bring so-vits-svc voices and ContentVec/HuBERT encoders in safely")
    add_import_subcommands(imp.add_subparsers(dest="kind", metavar="KIND", required=True))
    from host_bridge.weights_install import add_weights_subcommands

    add_weights_subcommands(sub.add_parser("weights", help="install the neural F0 trackers' weights (CREPE, FCPE, "
                                                           "PESTO) from their PyPI wheels"))
    from host_bridge.model_tools import add_model_tool_subcommands

    add_model_tool_subcommands(sub)
    return ap


def _resolve_model_and_params(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    from host_bridge.presets import load_preset

    params: dict[str, Any] = {}
    from host_bridge.resolve import model_folder

    if args.model:
        model_ref = model_folder(args.model)
    else:
        preset = load_preset(args.preset or DEFAULT_PRESET, allow_path=True)
        model_ref = model_folder(preset.model)
        params.update(preset.parameters)
    params.update(_params_from_args(args))
    for k, v in params.items():
        PARAMETERS[k].validate(v)
    return model_ref, params


def cmd_render(args: argparse.Namespace) -> int:
    from host_bridge.progress import BatchProgress, progress_enabled
    from host_bridge.render_batch import clean_stale_partials, render_batch, summary_table
    from host_bridge.render_plan import plan_batch
    from host_bridge.render_stop import stop_on_sigterm

    _names_print_as_given()
    plan = plan_batch(args.inputs, args.output, report_files=[args.json_report] if args.json_report else [])
    plan.check()  # before anything loads or is written: a refused batch leaves every file as it was
    if args.report:
        from host_bridge.report import check_report_dir

        check_report_dir(args.report, plan)
    pairs = plan.pairs
    model_ref, params = _resolve_model_and_params(args)
    automation = _automation_from_args(args)
    if not pairs:
        print(f"svc-host render: no audio files found in {', '.join(args.inputs)}", file=sys.stderr)
        return 2
    if args.dry_run:
        from host_bridge.render_check import check_model, dry_run, dry_run_table

        check_model(model_ref, params)
        rows = dry_run(plan, existing=args.existing, subtype=args.subtype, allow_truncated=args.allow_truncated)
        print(dry_run_table(rows, model_ref, params))
        return 1 if any(r.action == "fail" for r in rows) else 0
    for p in clean_stale_partials(plan.output_dirs):
        if not args.quiet:
            print(f"svc-host render: removed '{p}', left by an interrupted render", file=sys.stderr)

    if args.cluster:  # same contract as render_batch, on a Dask cluster (host_bridge.cluster)
        from host_bridge.cluster import cluster_batch

        render_batch = cluster_batch(args.cluster, transfer=args.cluster_transfer)  # noqa: F811
    bars = BatchProgress(len(pairs), enabled=progress_enabled(args.quiet))
    try:
        with stop_on_sigterm():
            results = render_batch(pairs, model_ref, params, jobs=max(1, args.jobs), existing=args.existing,
                                   threads=args.threads, subtype=args.subtype, automation=automation,
                                   allow_truncated=args.allow_truncated, progress=bars.file_done,
                                   file_started=bars.start_file, file_progress=bars.file_progress)
    finally:
        bars.close()
    print(summary_table(results))
    if args.json_report:
        from svc_dsp.fileops import write_atomic

        write_atomic(args.json_report, json.dumps([r.__dict__ for r in results], indent=2))
    if args.report:
        from host_bridge.report import write_report

        index = write_report(args.report, results, params)
        print(f"report: {index}")
    return 1 if any(r.status == "failed" for r in results) else 0


def _names_print_as_given() -> None:
    """File names that are not UTF-8 (held as surrogate escapes) print as their original bytes."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and getattr(stream, "errors", "") == "strict":
            stream.reconfigure(errors="surrogateescape")


def cmd_serve(args: argparse.Namespace) -> int:
    from host_bridge.server.app import cmd_serve as run_serve

    return run_serve(args, _params_from_args(args))


def cmd_models(args: argparse.Namespace) -> int:
    from host_bridge.presets import list_presets
    from svc_dsp.models.catalog import catalog_roots, list_catalog

    print("catalog roots: " + ", ".join(str(r) for r in catalog_roots()))
    print("models:   " + (", ".join(list_catalog("models")) or "none"))
    print("encoders: " + (", ".join(list_catalog("encoders")) or "none"))
    print("presets:  " + (", ".join(list_presets()) or "none"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from svc_dsp.errors import SvcError

    ap = build_parser()
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SvcError as e:
        print(f"svc-host {args.command}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM during a render (host_bridge.render_stop)
        signum = getattr(e, "signum", 2)
        print(f"svc-host: {'terminated' if signum == 15 else 'interrupted'}; no partial output files were left",
              file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
