"""Train the 'causal-mel' content encoder as a frame-wise phone classifier, evaluate, export.

The shipped units are the phone posteriors (``"output": "softmax"``, ``dim`` = number of
phones): a PPG, the most speaker-independent thing this net can emit; the classifier
is ``proj`` itself, so no training-only weights exist to strip.

Targets follow the engine grid (see ``svc_dsp.models.encoders.causal_mel``): the label of
frame j (the phone at sample (j+1)*hop) is the target of network output frame
j + 1 + delay_frames. Log-mels are computed once per clip with the net's own frontend;
training runs the rest of the net (running normalisation, convs, proj) on random
crops, with level, EQ and noise-floor augmentation applied in the log-mel domain.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from svc_dsp.fileops import write_atomic
from svc_dsp.models.encoders.causal_mel import DEFAULT_CONFIG, CausalMelEncoder, CausalMelEncoderNet
from training.corpus.synth_speech import PHONE_INDEX, PHONES, SAMPLE_RATE, Clip, frame_labels

IGNORE = -100
SIL = PHONE_INDEX["sil"]


def encoder_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The shipped config: DEFAULT_CONFIG with phone-posterior units."""
    cfg = {**DEFAULT_CONFIG, "name": name, "dim": len(PHONES), "output": "softmax",
           "n_classes": len(PHONES), "phones": list(PHONES), "sample_rate": SAMPLE_RATE}
    cfg.update(overrides)
    return cfg


@dataclass
class Example:
    mel: np.ndarray      # float16 (n_mels, M): log-mel of net output frames m = 0..M-1
    target: np.ndarray   # int64 (M,): phone id for output frame m, IGNORE where none


def make_examples(clips: Sequence[Clip], net: CausalMelEncoderNet) -> list[Example]:
    """Log-mel + shifted frame targets for each clip (audio padded as ``encode`` pads it)."""
    hop = net.frontend.hop
    shift = 1 + int(net.cfg["delay_frames"])
    out = []
    with torch.inference_mode():
        for c in clips:
            lab = frame_labels(c.ends, c.phones, len(c.audio), hop)
            total = (len(lab) + shift) * hop
            x = np.zeros(total, dtype=np.float32)
            x[:len(c.audio)] = c.audio
            mel, _ = net.frontend(torch.from_numpy(x)[None])
            tgt = np.full(mel.shape[-1], IGNORE, dtype=np.int64)
            tgt[shift:shift + len(lab)] = np.where(lab < 0, IGNORE, lab)  # NO_CLASS: not trained on
            out.append(Example(mel[0].numpy().astype(np.float16), tgt))
    return out


def speech_stats(examples: Sequence[Example], floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of log-mel over speech frames (mean log-mel above ``floor``)."""
    s = np.zeros(examples[0].mel.shape[0])
    ss = np.zeros_like(s)
    n = 0
    for e in examples:
        m = e.mel.astype(np.float64)
        sel = m[:, m.mean(axis=0) > floor]
        s += sel.sum(axis=1)
        ss += (sel * sel).sum(axis=1)
        n += sel.shape[1]
    mean = s / max(n, 1)
    return mean, np.maximum(ss / max(n, 1) - mean * mean, 1e-4)


def _augment_mel(m: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Level, smooth EQ (up to ±4 dB) and a flat noise floor, all in natural-log power."""
    n_mels = m.shape[0]
    db = math.log(10.0) / 10.0
    gain = rng.uniform(-12, 12) * db
    eq = torch.zeros(n_mels)
    if rng.random() < 0.5:
        f = torch.linspace(0, math.pi, n_mels)
        for k in (1, 2, 3):
            eq += float(rng.uniform(-4, 4) / k) * db * torch.cos(k * f + float(rng.uniform(0, math.pi)))
    m = m + gain + eq[:, None]
    if rng.random() < 0.6:
        speech_level = torch.quantile(m.mean(dim=0), 0.9)
        noise = speech_level - rng.uniform(25, 60) * db
        m = torch.logaddexp(m, noise.expand_as(m))
    return m


def make_batch(examples: Sequence[Example], rng: np.random.Generator, batch: int, crop: int,
               augment: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Random crops (half of them from the clip start, where the running normaliser starts)."""
    n_mels = examples[0].mel.shape[0]
    mels = torch.full((batch, n_mels, crop), math.log(1e-6))
    tgts = torch.full((batch, crop), IGNORE, dtype=torch.long)
    for b in range(batch):
        e = examples[int(rng.integers(len(examples)))]
        m_len = e.mel.shape[1]
        start = 0 if rng.random() < 0.5 or m_len <= crop else int(rng.integers(0, m_len - crop + 1))
        n = min(crop, m_len - start)
        mels[b, :, :n] = torch.from_numpy(e.mel[:, start:start + n].astype(np.float32))
        tgts[b, :n] = torch.from_numpy(e.target[start:start + n])
        if augment:
            mels[b] = _augment_mel(mels[b], rng)
    return mels, tgts


def logits_from_mel(net: CausalMelEncoderNet, mel: torch.Tensor) -> torch.Tensor:
    """The net's forward without its frontend, stopping before the softmax: (B, n_classes, T)."""
    b, n = mel.shape[0], mel.shape[1]
    zero = torch.zeros(b, n, dtype=torch.float64)
    with torch.no_grad():  # the normaliser has no trainable parameters
        z, _, _, _ = net.normalise(mel, zero, zero.clone(), torch.zeros(b, 1, dtype=torch.float64))
    h, _ = net.conv_in(z)
    h, _ = net.stack(h, None)
    return net.proj(h)


def frame_accuracy(enc: CausalMelEncoder, clips: Sequence[Clip], sample_rate: int = SAMPLE_RATE
                   ) -> dict[str, float]:
    """Frame accuracy of argmax(units) through the engine's own ``encode`` (all / speech frames)."""
    import soxr

    hit = tot = hit_sp = tot_sp = 0
    for c in clips:
        lab = frame_labels(c.ends, c.phones, len(c.audio), round(enc.frame_seconds * SAMPLE_RATE))
        x = c.audio if sample_rate == SAMPLE_RATE else soxr.resample(c.audio, SAMPLE_RATE, sample_rate)
        pred = enc.encode(x.astype(np.float32), sample_rate).argmax(axis=1)
        n = min(len(pred), len(lab))
        known = lab[:n] >= 0
        ok = (pred[:n] == lab[:n])[known]
        sp = lab[:n][known] != SIL
        hit += int(ok.sum())
        tot += int(known.sum())
        hit_sp += int(ok[sp].sum())
        tot_sp += int(sp.sum())
    return {"all": round(100.0 * hit / max(tot, 1), 2), "speech": round(100.0 * hit_sp / max(tot_sp, 1), 2),
            "frames": tot}


def frame_accuracy_silence(clips: Sequence[Clip], hop: int = 80) -> float:
    """Accuracy of always answering 'sil' (the chance level to beat), in percent."""
    labs = np.concatenate([frame_labels(c.ends, c.phones, len(c.audio), hop) for c in clips])
    return round(100.0 * float((labs == SIL).mean()), 2)


def force_align(logp: np.ndarray, phones: np.ndarray, hop_seconds: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Viterbi alignment of a phone sequence to frame log posteriors.

    logp: (T, n_classes) for frames j on the engine grid; phones: ids in order (runs of
    'sil' merged; an optional 'sil' is allowed between any two phones and at both ends).
    Returns (end times in s, phone ids, mean log posterior along the path) in the format
    of :func:`frame_labels`.
    """
    seq: list[int] = []
    for p in phones:
        if not (p == SIL and seq and seq[-1] == SIL):
            seq.append(int(p))
    states: list[int] = []
    skip: list[bool] = []
    for i, p in enumerate(seq):
        if p != SIL and (not states or states[-1] != SIL):
            states.append(SIL)
            skip.append(True)
        states.append(p)
        skip.append(False)
    if states[-1] != SIL:
        states.append(SIL)
        skip.append(True)
    ph = np.array(states)
    sk = np.array(skip)
    n_t, n_s = logp.shape[0], len(states)
    emit = logp[:, ph]                                   # (T, S)
    score = np.full(n_s, -np.inf)
    score[0] = emit[0, 0]
    if n_s > 1 and sk[0]:
        score[1] = emit[0, 1]
    back = np.zeros((n_t, n_s), dtype=np.int16)          # 0 stay, 1 advance, 2 skip an optional sil
    can_skip_into = np.zeros(n_s, dtype=bool)
    can_skip_into[2:] = sk[1:-1]
    for t in range(1, n_t):
        adv = np.concatenate([[-np.inf], score[:-1]])
        jump = np.where(can_skip_into, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        cand = np.stack([score, adv, jump])
        back[t] = cand.argmax(axis=0)
        score = cand.max(axis=0) + emit[t]
    end = n_s - 1 if not (n_s > 1 and sk[-1] and score[-2] > score[-1]) else n_s - 2
    best = float(score[end]) / n_t
    path = np.empty(n_t, dtype=np.int64)
    s_i = end
    for t in range(n_t - 1, -1, -1):
        path[t] = s_i
        s_i -= int(back[t, s_i])
    frame_ph = ph[path]
    change = np.flatnonzero(np.diff(path) != 0)          # last frame of each run except the final
    last = np.concatenate([change, [n_t - 1]])
    ends = (last + 1.5) * hop_seconds
    return ends, frame_ph[last], best


def align_clips(enc: CausalMelEncoder, clips: Sequence[Clip], min_score: float = -np.inf
                ) -> tuple[list[Clip], list[float]]:
    """Give clips without timings (NaN ends) phone timings by forced alignment with ``enc``."""
    from dataclasses import replace

    out, scores = [], []
    for c in clips:
        if not np.isnan(c.ends).any():
            out.append(c)
            continue
        post = enc.encode(c.audio, SAMPLE_RATE)
        ends, ph, score = force_align(np.log(post + 1e-8), c.phones, enc.frame_seconds)
        scores.append(score)
        if score >= min_score:
            out.append(replace(c, ends=ends, phones=ph))
    return out, scores


@dataclass
class TrainSettings:
    steps: int = 800
    batch: int = 16
    crop_frames: int = 400          # 2 s at 5 ms
    lr: float = 2e-3
    weight_decay: float = 1e-2
    warmup: int = 40
    label_smoothing: float = 0.05
    seed: int = 0
    checkpoint_every: int = 100
    max_minutes: float = 0.0        # 0: no wall-clock limit; else stop early (recorded in provenance)
    log_every: int = 20
    init_from: str | None = None    # an encoder model folder to start from (when no checkpoint exists)
    extra: dict[str, Any] = field(default_factory=dict)


def _save_checkpoint(run_dir: Path, step: int, net: torch.nn.Module, opt: torch.optim.Optimizer,
                     rng: np.random.Generator) -> None:
    """One folder per checkpoint, written under a temp name and renamed; keeps the newest two."""
    final = run_dir / f"step-{step:07d}"
    tmp = run_dir / f".step-{step:07d}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step,
                "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state()}, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(run_dir.glob("step-*"))[:-2]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    done = sorted(p for p in run_dir.glob("step-*") if (p / "state.pt").is_file())
    return done[-1] if done else None


def train(cfg: dict[str, Any], examples: Sequence[Example], settings: TrainSettings, run_dir: Path,
          log: Callable[[str], None] = print) -> tuple[CausalMelEncoderNet, dict[str, Any]]:
    """Fit the net on ``examples``; resumes from the newest checkpoint in ``run_dir``."""
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    net = CausalMelEncoderNet({**cfg, "output": "linear"}, SAMPLE_RATE)
    mean, var = speech_stats(examples, net.floor)
    net.norm_mean.copy_(torch.from_numpy(mean).float())
    net.norm_var.copy_(torch.from_numpy(var).float())
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    step = 0
    run_dir.mkdir(parents=True, exist_ok=True)
    ck = latest_checkpoint(run_dir)
    if ck is not None:
        st = torch.load(ck / "state.pt", weights_only=True)  # tensors and plain containers only
        net.load_state_dict(st["net"])
        opt.load_state_dict(st["opt"])
        step = int(st["step"])
        rng.bit_generator.state = st["rng"]
        torch.set_rng_state(st["torch_rng"])
        log(f"resumed from {ck.name}")
    elif settings.init_from:
        from svc_dsp.models.folder import load_tensors

        init = load_tensors(Path(settings.init_from) / "encoder.safetensors")
        net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})
        log(f"initialised from {settings.init_from}")

    t0 = time.time()
    step0 = step

    def progress(s: int) -> float:
        # With a wall-clock limit the cosine follows whichever runs out first, steps or
        # time, so a run on a slow or busy machine still ends annealed.
        p = (s - settings.warmup) / max(1, settings.steps - settings.warmup)
        if settings.max_minutes and s > step0:
            p = max(p, (time.time() - t0) / (60 * settings.max_minutes))
        return min(max(p, 0.0), 1.0)

    def lr_at(s: int) -> float:
        if s < settings.warmup:
            return settings.lr * (s + 1) / settings.warmup
        return settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress(s))))

    net.train()
    run_loss = run_acc = 0.0
    stopped_early = False
    while step < settings.steps:
        if settings.max_minutes and time.time() - t0 > 60 * settings.max_minutes:
            stopped_early = True
            log(f"wall-clock limit of {settings.max_minutes} min reached at step {step}")
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        mel, tgt = make_batch(examples, rng, settings.batch, settings.crop_frames)
        logits = logits_from_mel(net, mel)
        loss = F.cross_entropy(logits, tgt, ignore_index=IGNORE, label_smoothing=settings.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        step += 1
        with torch.no_grad():
            valid = tgt != IGNORE
            run_acc += float((logits.argmax(1) == tgt)[valid].float().mean())
            run_loss += float(loss)
        if step % settings.log_every == 0:
            log(f"step {step} loss {run_loss / settings.log_every:.3f} train-acc "
                f"{100 * run_acc / settings.log_every:.1f}% lr {lr_at(step):.2e} {time.time() - t0:.0f}s")
            run_loss = run_acc = 0.0
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            _save_checkpoint(run_dir, step, net, opt, rng)
    if stopped_early:
        _save_checkpoint(run_dir, step, net, opt, rng)
    net.eval()
    info = {"steps": step, "train_seconds": round(time.time() - t0, 1), "stopped_early": stopped_early}
    write_atomic(run_dir / "train_info.json", json.dumps(info))  # for a later --export-only
    return net, info


def load_checkpoint_net(cfg: dict[str, Any], run_dir: Path) -> tuple[CausalMelEncoderNet, int]:
    """The net of the newest complete checkpoint (to export a partial run)."""
    ck = latest_checkpoint(run_dir)
    if ck is None:
        raise FileNotFoundError(f"no complete checkpoint under '{run_dir}'")
    net = CausalMelEncoderNet({**cfg, "output": "linear"}, SAMPLE_RATE)
    st = torch.load(ck / "state.pt", weights_only=True)
    net.load_state_dict(st["net"])
    net.eval()
    return net, int(st["step"])


def to_encoder(cfg: dict[str, Any], net: CausalMelEncoderNet) -> CausalMelEncoder:
    tensors = {k: v.detach().clone() for k, v in net.state_dict().items()}
    enc = CausalMelEncoder(cfg, tensors)
    expected = enc.expected_shapes()
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if got != expected:
        raise ValueError(f"trained tensors {got} do not match the config's shapes {expected}")
    return enc


def export(folder: str | os.PathLike, cfg: dict[str, Any], net: CausalMelEncoderNet,
           training: dict[str, Any], check_clip: np.ndarray | None = None) -> Path:
    """Write the model folder, reload it through the engine's loader and compare outputs."""
    from svc_dsp.models.encoders.registry import load_content_encoder
    from svc_dsp.models.folder import write_model_folder

    enc = to_encoder(cfg, net)
    config = {**cfg, "family": "content-encoder", "kind": "causal-mel", "training": training}
    path = write_model_folder(folder, config, {"encoder.safetensors": enc.tensors()}, overwrite=True)
    back = load_content_encoder(path)
    probe = check_clip if check_clip is not None else \
        np.random.default_rng(0).standard_normal(SAMPLE_RATE // 2).astype(np.float32) * 0.1
    a, b = enc.encode(probe, SAMPLE_RATE), back.encode(probe, SAMPLE_RATE)
    if a.shape != b.shape or float(np.abs(a - b).max()) > 1e-6:
        raise RuntimeError(f"exported encoder '{path}' does not reproduce the trained one")
    return path
