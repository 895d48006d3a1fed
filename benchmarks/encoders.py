"""Content encoders judged on speakers they did not learn: frame accuracy per held-out voice.

    python -m benchmarks encoders [--encoders svc-phone-v1,FOLDER,...] [--voices ...] [--sentences 8]

Each voice speaks the first ``--sentences`` of the encoder recipes' held-out sentences (never
trained on; those with a word a voice cannot read are passed over), as spoken and as sung (the recipe's own 'sung' variant), with its synthesiser's own phone
timings as labels (``training/corpus/synth_speech.py``; shards cached in ``--corpus``). The
default voices: the English speaker kal (flite kal16, festival kal_diphone) and the eight
festival voices of other languages (Italian, Finnish, Czech, Russian, Catalan), whose phones
are mapped to the 40 classes (``training/corpus/foreign_phones.py``; sounds with no English
neighbour are left out). Frame accuracy (%) is argmax(units) against the labels on all labelled
frames, through the engine's own ``encode`` at 16 kHz. A voice that an encoder's model.json
lists among its training voices is marked ``seen``; the summary averages, per encoder, over the
voices that none of the listed encoders saw.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from training.corpus.foreign_phones import FOREIGN_VOICES
from training.recipes.encoder_svc_phone_v1 import EVAL_SUNG, FULL, UNSEEN_VOICES

DEFAULT_VOICES = (*UNSEEN_VOICES, *FOREIGN_VOICES)
TEST_SEED = FULL["seed"] + 1  # the encoder recipes' held-out sentences
SKIP_WORDS = {"jazz"}  # festival's Finnish voices stop on it at a sentence end ("SIOD ERROR")


def seen_voices(folder: Path) -> set[str]:
    """The voices an encoder folder's model.json says it was trained on (empty when it does not say)."""
    from svc_dsp.models.folder import read_config

    tr = read_config(folder).get("training") or {}
    keys = ("train_voices", "espeak_voices_forced_aligned", "foreign_voices_phone_mapped")
    return {v for k in keys for v in (tr.get(k) or [])}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks encoders", description=__doc__.split("\n\n")[0])
    ap.add_argument("--encoders", default="svc-phone-v1", help="comma-separated catalog names or folders")
    ap.add_argument("--voices", default=",".join(DEFAULT_VOICES), help="comma-separated corpus voice names")
    ap.add_argument("--sentences", type=int, default=8, help="held-out sentences per voice (default 8)")
    ap.add_argument("--corpus", type=Path, default=Path("build") / "encoder_corpus", help="shard cache folder")
    ap.add_argument("--jobs", type=int, default=2, help="synthesis processes (default 2)")
    args = ap.parse_args(argv)

    import numpy as np

    from benchmarks.common import machine_line
    from svc_dsp.models.encoders.registry import load_content_encoder
    from training.corpus.synth_speech import Job, Variant, build_corpus, load_shard, make_sentences, voice_info
    from training.encoder_train import frame_accuracy
    from training.features import resolve_encoder_folder

    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    for v in voices:
        voice_info(v)  # unknown names stop here, with the list of known ones
    refs = [r.strip() for r in args.encoders.split(",") if r.strip()]
    folders = [resolve_encoder_folder(r) for r in refs]
    encoders = [load_content_encoder(f) for f in folders]
    seen = [seen_voices(f) for f in folders]
    print(machine_line())
    text = tuple([t for t in make_sentences(64, TEST_SEED) if not SKIP_WORDS & set(t.replace(",", "").split())]
                 [:args.sentences])
    styles = {"spoken": Variant(), "sung": Variant(**EVAL_SUNG)}
    t0 = time.perf_counter()
    jobs = {(v, s): Job(v, text, (var,)) for v in voices for s, var in styles.items()}
    paths = dict(zip(jobs, build_corpus(list(jobs.values()), args.corpus, processes=args.jobs)))
    print(f"corpus: {len(jobs)} shards in '{args.corpus}' ({time.perf_counter() - t0:.0f} s)")

    acc: dict[tuple[str, str, int], float] = {}
    for key, job in jobs.items():
        clips = load_shard(paths[key], job)
        for i, enc in enumerate(encoders):
            acc[(*key, i)] = frame_accuracy(enc, clips)["all"]
    head = " | ".join(f"{r} spoken / sung" for r in refs)
    print(f"\nframe accuracy % on {args.sentences} held-out sentences per voice\n\n| voice | {head} |")
    print("|---|" + "---|" * len(refs))
    for v in voices:
        cells = [f"{acc[(v, 'spoken', i)]:.1f} / {acc[(v, 'sung', i)]:.1f}" + (" (seen)" if v in seen[i] else "")
                 for i in range(len(refs))]
        print(f"| {v} | " + " | ".join(cells) + " |")
    unseen = [v for v in voices if not any(v in s for s in seen)]
    if unseen:
        cells = [f"{np.mean([acc[(v, 'spoken', i)] for v in unseen]):.1f} / "
                 f"{np.mean([acc[(v, 'sung', i)] for v in unseen]):.1f}" for i in range(len(refs))]
        print(f"| mean of {len(unseen)} voices none saw | " + " | ".join(cells) + " |")
    print(f"\nvoices none of the encoders saw: {', '.join(unseen) or 'none'}; total {time.perf_counter() - t0:.0f} s")
    return 0
