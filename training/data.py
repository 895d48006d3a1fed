"""Training data: random crops of cached features + the matching audio, in-process.

No DataLoader worker processes (their deaths are a classic failure of other tools): crops are
cheap, and reading them in the training process keeps errors readable.

A crop is a window of ``context + frames`` frames starting at a frame boundary ``s0``; the
decoder runs from a fresh state over the whole window, and the loss covers only the last
``frames`` frames (audio samples ``[(s0+context)*hop, (s0+context+frames)*hop)``), so every
frame in the loss has its full causal context. Crops of step ``s`` on rank ``r`` depend only on
``(seed, r, s)``, so a resumed run draws the same crops as an uninterrupted one.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import TrainingError
from training.features import features_path
from training.prepare import read_filelist


@dataclass
class Item:
    """One prepared piece: its audio path, speaker id, frame count, and (optionally) cached arrays."""

    rel: str
    audio: Path
    feats: Path
    speaker: int
    n_frames: int
    variants: int = 0
    cache: dict[str, np.ndarray] | None = None


@dataclass
class Batch:
    """Arrays for one step. units (B,D,W), energy (B,1,W), f0 (B,W), spk (B,S,W) one-hot,
    audio (B, frames*hop) = the target samples of the loss region, context (frames before it)."""

    units: np.ndarray
    energy: np.ndarray
    f0: np.ndarray
    spk: np.ndarray
    audio: np.ndarray
    context: int


class CropSampler:
    """Draws crops from the files of one split of a prepared + feature-extracted folder.

    ``content_augment``: share of training crops whose units are taken from one of the file's
    speaker-perturbed copies ('units_perturbed', see :mod:`training.features`) instead of its own.
    """

    def __init__(self, prep_dir: Path, split: str, speakers: dict[str, int], hop: int, *,
                 all_in_mem: bool = False, content_augment: float = 0.0) -> None:
        self.prep_dir, self.hop, self.n_speakers = Path(prep_dir), hop, len(speakers)
        self.content_augment = float(content_augment)
        self.items: list[Item] = []
        missing = []
        for rel in read_filelist(self.prep_dir, split):
            fp = features_path(self.prep_dir, rel)
            side = fp.with_suffix(".json")
            if not side.is_file():
                missing.append(rel)
                continue
            meta = json.loads(side.read_text(encoding="utf-8"))
            spk_name = Path(rel).parts[1]
            if spk_name not in speakers:
                raise TrainingError(f"'{rel}' belongs to speaker '{spk_name}', which speakers.json does not list; "
                                    f"re-run prepare")
            self.items.append(Item(rel, self.prep_dir / rel, fp, speakers[spk_name], int(meta["n_frames"]),
                                   int(meta.get("content_variants", 0))))
        no_variants = [it.rel for it in self.items if not it.variants] if self.content_augment > 0 else []
        if no_variants:
            raise TrainingError(f"content_augment = {self.content_augment:g} needs speaker-perturbed units, but "
                                f"{len(no_variants)} {split} file(s) have none (e.g. '{no_variants[0]}'); run "
                                f"'svc-host train features {self.prep_dir} --encoder NAME --content-variants 4', "
                                f"or set content_augment = 0")
        if missing:
            warnings.warn(f"{len(missing)} {split} file(s) have no features and are left out (e.g. '{missing[0]}'); "
                          f"re-run 'svc-host train features'", stacklevel=2)
        if all_in_mem:
            for it in self.items:
                it.cache = self._load_all(it)

    @property
    def total_frames(self) -> int:
        return sum(it.n_frames for it in self.items)

    def _load_all(self, it: Item) -> dict[str, np.ndarray]:
        from svc_dsp.audio.io import load_audio

        with np.load(it.feats) as z:
            arrs = {k: z[k] for k in self._keys()}
        x, _, _ = load_audio(it.audio)
        arrs["audio"] = x.mean(axis=0).astype(np.float32)
        return arrs

    def _keys(self) -> tuple[str, ...]:
        base = ("units", "energy", "f0")
        return base + ("units_perturbed",) if self.content_augment > 0 else base

    def _read(self, it: Item, a: int, b: int, variant: int | None = None) -> dict[str, np.ndarray]:
        """Frames [a, b) of an item's features and the audio samples of those frames; with
        ``variant`` k, the units are those of the k-th perturbed copy."""
        from svc_dsp.audio.io import load_audio

        def pick(arrs: Any) -> dict[str, np.ndarray]:
            out = {k: arrs[k][a:b] for k in ("energy", "f0")}
            out["units"] = arrs["units"][a:b] if variant is None else \
                arrs["units_perturbed"][variant, a:b].astype(np.float32)
            return out

        if it.cache is not None:
            c = it.cache
            audio = c["audio"][a * self.hop:b * self.hop]
            out = pick(c)
        else:
            with np.load(it.feats) as z:
                out = pick(z)
            x, _, _ = load_audio(it.audio, start=min(a * self.hop, _n_samples(it)), frames=(b - a) * self.hop)
            audio = x.mean(axis=0).astype(np.float32)
        if audio.shape[0] < (b - a) * self.hop:  # the last frame of a file may be partial
            audio = np.pad(audio, (0, (b - a) * self.hop - audio.shape[0]))
        out["audio"] = audio
        return out

    def usable(self, window: int) -> list[Item]:
        return [it for it in self.items if it.n_frames >= window]

    def batch(self, rng: np.random.Generator, batch_size: int, frames: int, context: int) -> Batch:
        """``batch_size`` random crops of ``context + frames`` frames (length-weighted file choice)."""
        window = context + frames
        pool = self.usable(window)
        if not pool:
            longest = max((it.n_frames for it in self.items), default=0)
            raise TrainingError(f"no training file is long enough for a crop of {window} frames "
                                f"({window * self.hop} samples); the longest has {longest} frames. "
                                f"Lower segment_seconds or prepare longer pieces")
        weights = np.array([it.n_frames - window + 1 for it in pool], dtype=np.float64)
        picks = rng.choice(len(pool), size=batch_size, p=weights / weights.sum())
        parts = []
        for i in picks:
            it = pool[int(i)]
            s0 = int(rng.integers(0, it.n_frames - window + 1))
            variant = None  # no extra draws without augmentation: earlier runs' crops stay the same
            if self.content_augment > 0 and rng.random() < self.content_augment:
                variant = int(rng.integers(it.variants))
            parts.append((it, self._read(it, s0, s0 + window, variant)))
        return self._collate(parts, context)

    def whole(self, it: Item, max_frames: int) -> Batch:
        """One item from its start (fresh state, no context), at most ``max_frames`` frames."""
        n = min(it.n_frames, max_frames)
        return self._collate([(it, self._read(it, 0, n))], 0)

    def _collate(self, parts: list[tuple[Item, dict[str, np.ndarray]]], context: int) -> Batch:
        w = parts[0][1]["f0"].shape[0]
        spk = np.zeros((len(parts), self.n_speakers, w), np.float32)
        for b, (it, _) in enumerate(parts):
            spk[b, it.speaker] = 1.0
        return Batch(
            units=np.stack([p["units"].T for _, p in parts]).astype(np.float32),
            energy=np.stack([p["energy"][None] for _, p in parts]).astype(np.float32),
            f0=np.stack([p["f0"] for _, p in parts]).astype(np.float32),
            spk=spk,
            audio=np.stack([p["audio"][context * self.hop:] for _, p in parts]).astype(np.float32),
            context=context)


def _n_samples(it: Item) -> int:
    import soundfile as sf

    return int(sf.info(str(it.audio)).frames)


def read_speakers(prep_dir: Path) -> dict[str, int]:
    """speakers.json of a prepared folder, as {name: id} ordered by id."""
    p = Path(prep_dir) / "speakers.json"
    if not p.is_file():
        raise TrainingError(f"'{p}' is missing; run 'svc-host train prepare' first")
    d = json.loads(p.read_text(encoding="utf-8"))
    ids = sorted(d.values())
    if ids != list(range(len(ids))):
        raise TrainingError(f"'{p}': speaker ids must be 0..{len(ids) - 1} without gaps; got {ids}")
    return dict(sorted(d.items(), key=lambda kv: kv[1]))
