"""Recipe: the default family's content encoder 'svc-phone-v1' (phone posteriors, causal).

    python -m training.recipes.encoder_svc_phone_v1            # full run -> presets/encoders/svc-phone-v1
    python -m training.recipes.encoder_svc_phone_v1 --export-only   # export the newest checkpoint
    python -m training.recipes.encoder_svc_phone_v1 --tiny --out DIR   # seconds; used by the tests

Corpus (synthesised here, cached under build/encoder_corpus/): five training voices
(flite awb, rms, slt; festival ked, slt-hts), each speaking its own sentences as recorded,
with F0 x0.7-1.5 + formant warp + speed change, and sung on a melody + formant warp.
Held out: unseen sentences of the training voices, and the speaker kal (flite kal16 and
festival kal_diphone) who is never trained on, both spoken and sung.

Two stages. Stage 1 trains on the five timed voices only and is written to
build/encoder_runs/svc-phone-v1-stage1/model. Stage 2 labels 30 espeak-ng voices
(accents x variants, 30 sentences each, original + one F0/warp/speed variant) by forced
alignment with stage 1, then continues from the stage-1 weights on everything.
(svc-phone-v2, ``encoder_svc_phone_v2.py``, is this recipe with more speakers in stage 2.)
Both stages stop at their step count or wall-clock limit, whichever comes first (the
learning-rate cosine follows the same clock), so a busy machine gives fewer steps;
model.json records the steps actually run.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
NAME = "svc-phone-v1"
TRAIN_VOICES = ("flite-awb", "flite-rms", "flite-slt", "festival-ked", "festival-slt-hts")
UNSEEN_VOICES = ("flite-kal16", "festival-kal")
# espeak-ng accents x voice variants: many (formant-synthesis) speakers without timings;
# their labels come from forced alignment with a stage-1 model trained without them.
# (The pairing repeats three accent+variant pairs, so 27 distinct voices; each entry speaks
# its own sentences. Kept as trained: changing it changes the corpus cache keys.)
ESPEAK_VOICES = tuple(f"espeak-{a}+{v}" for a, v in zip(
    ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd") * 5,
    ("m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7", "klatt", "klatt2", "klatt3",
     "klatt4", "croak", "f1", "m3", "f4", "m7", "f2", "m2", "klatt", "f5", "m6", "f3", "m4", "klatt3", "m1")))

# how held-out sentences are sung when an encoder is judged (Variant fields; benchmarks/encoders.py too)
EVAL_SUNG: dict[str, Any] = {"kind": "sung", "f0_scale": 1.25, "seed": 7}

FULL: dict[str, Any] = {
    "name": NAME, "delay_frames": 1, "seed": 1234, "sentences_per_voice": 200, "sentences_per_job": 8, "test_sentences": 8,
    "unseen_sentences": 16, "steps": 1800, "batch": 16, "crop_frames": 400, "max_minutes": 28.0,
    "out": str(REPO / "presets" / "encoders" / NAME), "corpus": str(REPO / "build" / "encoder_corpus"),
    "run_dir": str(REPO / "build" / "encoder_runs" / NAME), "train_voices": TRAIN_VOICES,
    "unseen_voices": UNSEEN_VOICES, "espeak_voices": ESPEAK_VOICES, "espeak_sentences": 30,
    # festival voices of other languages (training/corpus/foreign_phones.py): none in v1
    "foreign_voices": (), "foreign_sentences": 60,
    "aligner": str(REPO / "build" / "encoder_runs" / f"{NAME}-stage1" / "model"),
    # with espeak voices: stage 2 starts from the stage-1 weights and trains on everything
    "stage2_steps": 1200, "stage2_lr": 1e-3, "stage2_max_minutes": 30.0,
}
TINY: dict[str, Any] = {
    **FULL, "espeak_voices": (), "foreign_voices": (), "sentences_per_voice": 2, "sentences_per_job": 2, "test_sentences": 1, "unseen_sentences": 1,
    "steps": 4, "batch": 4, "crop_frames": 200, "max_minutes": 0.0,
    "train_voices": ("flite-rms", "flite-slt"), "unseen_voices": ("flite-kal16",),
}


def _variants(rng: np.random.Generator, tiny: bool) -> tuple:
    from training.corpus.synth_speech import Variant

    speech = Variant("speech", f0_scale=float(rng.uniform(0.7, 1.5)), warp=float(rng.uniform(0.82, 1.2)),
                     speed=float(rng.uniform(0.85, 1.2)), seed=int(rng.integers(1 << 30)))
    if tiny:
        return (Variant(), speech)
    sung = Variant("sung", f0_scale=float(rng.uniform(0.8, 1.6)), warp=float(rng.uniform(0.82, 1.2)),
                   speed=float(rng.uniform(0.8, 1.1)), seed=int(rng.integers(1 << 30)))
    return (Variant(), speech, sung)


def plan(p: dict[str, Any], tiny: bool) -> tuple[list, dict[str, list]]:
    """(training jobs, {eval set name: jobs}); every choice comes from p['seed']."""
    from training.corpus.synth_speech import Job, Variant, make_sentences

    rng = np.random.default_rng(p["seed"])
    n_train = p["sentences_per_voice"] * len(p["train_voices"])
    train_text = make_sentences(n_train, p["seed"])
    test_text = make_sentences(p["unseen_sentences"], p["seed"] + 1)
    train_jobs = []
    for vi, voice in enumerate(p["train_voices"]):
        mine = train_text[vi * p["sentences_per_voice"]:(vi + 1) * p["sentences_per_voice"]]
        for k in range(0, len(mine), p["sentences_per_job"]):
            train_jobs.append(Job(voice, tuple(mine[k:k + p["sentences_per_job"]]), _variants(rng, tiny)))
    es_text = make_sentences(p["espeak_sentences"] * len(p["espeak_voices"]), p["seed"] + 2)
    for vi, voice in enumerate(p["espeak_voices"]):
        mine = es_text[vi * p["espeak_sentences"]:(vi + 1) * p["espeak_sentences"]]
        for k in range(0, len(mine), 10):
            train_jobs.append(Job(voice, tuple(mine[k:k + 10]), _variants(rng, True)))
    fo_text = make_sentences(p["foreign_sentences"] * len(p["foreign_voices"]), p["seed"] + 3)
    for vi, voice in enumerate(p["foreign_voices"]):
        mine = fo_text[vi * p["foreign_sentences"]:(vi + 1) * p["foreign_sentences"]]
        for k in range(0, len(mine), p["sentences_per_job"]):
            train_jobs.append(Job(voice, tuple(mine[k:k + p["sentences_per_job"]]), _variants(rng, tiny)))
    sung = Variant(**EVAL_SUNG)
    seen = tuple(test_text[:p["test_sentences"]])
    evals = {
        "seen_voices": [Job(v, seen, (Variant(),)) for v in p["train_voices"]],
        "unseen_speaker": [Job(v, tuple(test_text), (Variant(),)) for v in p["unseen_voices"]],
        "seen_voices_sung": [Job(v, seen, (sung,)) for v in p["train_voices"]],
        "unseen_speaker_sung": [Job(v, tuple(test_text), (sung,)) for v in p["unseen_voices"]],
    }
    return train_jobs, evals


def _load(jobs: list, corpus: str, processes: int) -> list:
    from training.corpus.synth_speech import build_corpus, load_shard

    paths = build_corpus(jobs, corpus, processes)
    return [c for j, path in zip(jobs, paths) for c in load_shard(path, j)]


def stage1_settings(p: dict[str, Any]) -> dict[str, Any]:
    """Settings of the stage-1 aligner behind ``p['aligner']``: this recipe's (v1's) five timed
    voices, name and delay, whichever version asks, so every version shares one aligner."""
    aligner = Path(p["aligner"])
    return {**p, "espeak_voices": (), "foreign_voices": (), "name": FULL["name"],
            "delay_frames": FULL["delay_frames"], "out": str(aligner), "run_dir": str(aligner.parent)}


def _align(p: dict[str, Any], clips: list, check: list, tiny: bool, processes: int, threads: int,
           log) -> tuple[list, dict[str, Any]]:
    """Label the espeak clips with a stage-1 encoder (this recipe without espeak voices),
    training it first if its folder is missing; report its agreement with true labels."""
    from dataclasses import replace

    from svc_dsp.models.encoders.registry import load_content_encoder
    from training import encoder_train as et
    from training.corpus.synth_speech import frame_labels

    aligner = Path(p["aligner"])
    if not (aligner / "model.json").is_file():
        log(f"stage 1: training the aligner -> {aligner}")
        run(stage1_settings(p), tiny, False, processes, threads, log)
    enc = load_content_encoder(aligner)
    agree = []
    for c in check:  # align clips whose true timings we know, compare frame labels
        blind = replace(c, ends=np.full(len(c.ends), np.nan))
        (got,), _ = et.align_clips(enc, [blind])
        a = frame_labels(c.ends, c.phones, len(c.audio), 80)
        b = frame_labels(got.ends, got.phones, len(c.audio), 80)
        agree.append(float((a == b).mean()))
    out, scores = et.align_clips(enc, clips)
    info = {"aligner": str(aligner.relative_to(REPO)) if aligner.is_relative_to(REPO) else str(aligner),
            "aligned_clips": len(scores), "mean_log_posterior": round(float(np.mean(scores)), 3),
            "frame_agreement_on_unseen_speaker_percent": round(100 * float(np.mean(agree)), 2)}
    st1 = enc.config.get("training", {})
    info["stage1"] = {k: st1.get(k) for k in ("steps", "train_seconds", "stopped_early", "frame_accuracy_percent")}
    log(f"forced alignment: {json.dumps(info)}")
    return out, info


def run(p: dict[str, Any], tiny: bool, export_only: bool = False, processes: int = 2, threads: int = 2,
        log=print) -> Path:
    import torch

    from training import encoder_train as et

    torch.set_num_threads(threads)
    t0 = time.time()
    train_jobs, eval_jobs = plan(p, tiny)
    all_jobs = train_jobs + [j for js in eval_jobs.values() for j in js]
    _load(all_jobs, p["corpus"], processes)  # one pool for everything
    train_clips = _load(train_jobs, p["corpus"], 1)
    evals = {k: _load(js, p["corpus"], 1) for k, js in eval_jobs.items()}
    align_info: dict[str, Any] = {}
    if any(np.isnan(c.ends).any() for c in train_clips):
        train_clips, align_info = _align(p, train_clips, evals["unseen_speaker"], tiny, processes, threads, log)
    minutes = sum(len(c.audio) for c in train_clips) / 16000 / 60
    log(f"corpus: {len(train_clips)} training clips, {minutes:.1f} min, built/loaded in {time.time() - t0:.0f}s")

    cfg = et.encoder_config(p["name"], delay_frames=p["delay_frames"])
    run_dir = Path(p["run_dir"])
    settings = et.TrainSettings(steps=p["steps"], batch=p["batch"], crop_frames=p["crop_frames"],
                                seed=p["seed"], max_minutes=p["max_minutes"],
                                checkpoint_every=max(1, min(100, p["steps"])), log_every=1 if tiny else 20)
    if align_info:
        settings.steps, settings.lr, settings.max_minutes = p["stage2_steps"], p["stage2_lr"], p["stage2_max_minutes"]
        settings.init_from = p["aligner"]
    if export_only:
        net, step = et.load_checkpoint_net(cfg, run_dir)
        info = {"steps": step, "train_seconds": None, "stopped_early": True}
        done = run_dir / "train_info.json"  # written when training ended at this checkpoint
        recorded = json.loads(done.read_text()) if done.is_file() else {}
        if recorded.get("steps") == step:
            info = recorded
    else:
        from svc_dsp.models.encoders.causal_mel import CausalMelEncoderNet
        examples = et.make_examples(train_clips, CausalMelEncoderNet(cfg, 16000))
        net, info = et.train(cfg, examples, settings, run_dir, log)
    enc = et.to_encoder(cfg, net)
    acc = {k: et.frame_accuracy(enc, clips) for k, clips in evals.items()}
    if not tiny:
        acc["unseen_speaker_at_44100"] = et.frame_accuracy(enc, evals["unseen_speaker"], 44100)
    chance = et.frame_accuracy_silence(evals["unseen_speaker"])
    log("frame accuracy % (all / speech frames): " + json.dumps(acc))
    n_params = sum(v.numel() for v in net.parameters())
    training = {
        "recipe": "training/recipes/encoder_svc_phone_v1.py" + (" --tiny" if tiny else ""),
        "corpus": "synthetic English word sequences (training/corpus/synth_speech.py WORDS), "
                  "phone labels from the synthesisers' own timings, CMU phones -> 40 classes",
        "train_voices": list(p["train_voices"]), "held_out_speaker": list(p["unseen_voices"]),
        "espeak_voices_forced_aligned": list(p["espeak_voices"]), "espeak_sentences_per_voice":
            p["espeak_sentences"] if p["espeak_voices"] else 0,
        "foreign_voices_phone_mapped": list(p["foreign_voices"]),
        "foreign_sentences_per_voice": p["foreign_sentences"] if p["foreign_voices"] else 0,
        "augmentation": "per 8-sentence job: original; WORLD F0 x0.7-1.5 + envelope warp x0.82-1.2 + "
                        "speed x0.85-1.2; sung melody (notes, glides, vibrato) at x0.8-1.6 median F0 + "
                        "warp x0.82-1.2 + speed x0.8-1.1; in training: level +-12 dB, EQ +-4 dB, "
                        "noise floor 25-60 dB under speech",
        **({"forced_alignment": align_info} if align_info else {}),
        "train_minutes": round(minutes, 1), "train_clips": len(train_clips), "seed": p["seed"],
        "batch": p["batch"], "crop_seconds": p["crop_frames"] * 0.005, **info,
        "parameters": int(n_params), "lookahead_ms": 5.0 * (1 + cfg["delay_frames"]),
        "frame_accuracy_percent": acc, "always_silence_baseline_percent": chance,
    }
    out = et.export(p["out"], cfg, net, training,
                    evals["unseen_speaker"][0].audio if evals["unseen_speaker"] else None)
    log(f"wrote {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.2f} MB) in {time.time() - t0:.0f}s")
    return out


def main(argv: list[str] | None = None, full: dict[str, Any] | None = None, tiny: dict[str, Any] | None = None,
         description: str = __doc__.split("\n")[0]) -> int:
    """The command line of this recipe; ``full``/``tiny`` replace its settings (other versions)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--tiny", action="store_true", help="a few sentences and steps (a smoke test)")
    name = (full or FULL)["name"]
    ap.add_argument("--out", help=f"model folder to write (default: presets/encoders/{name})")
    ap.add_argument("--corpus", help="corpus cache folder (default: build/encoder_corpus)")
    ap.add_argument("--run-dir", help=f"checkpoint folder (default: build/encoder_runs/{name})")
    ap.add_argument("--steps", type=int, help="training steps (overrides the recipe)")
    ap.add_argument("--max-minutes", type=float, help="stop training after this wall time (0: no limit)")
    ap.add_argument("--delay-frames", type=int,
                    help="trained delay in 5 ms frames; lookahead = 5 ms x (1 + this) (default: the recipe's)")
    ap.add_argument("--export-only", action="store_true", help="export the newest checkpoint, no training")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--processes", type=int, default=2, help="synthesis processes")
    a = ap.parse_args(argv)
    p = dict((tiny or TINY) if a.tiny else (full or FULL))
    if a.tiny:  # everything beside the output folder, never in the shipped places
        base = Path(a.out or REPO / "build" / "encoder_tiny")
        p.update(out=str(base), corpus=str(base.parent / (base.name + "-corpus")),
                 run_dir=str(base.parent / (base.name + "-run")))
    for key, val in (("out", a.out), ("corpus", a.corpus), ("run_dir", a.run_dir), ("steps", a.steps),
                     ("max_minutes", a.max_minutes), ("delay_frames", a.delay_frames)):
        if val is not None:
            p[key] = val
    run(p, a.tiny, a.export_only, a.processes, a.threads, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
