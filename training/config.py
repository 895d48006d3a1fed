"""The training configuration: one table of fields (name, type, default, meaning), read from
JSON or TOML. Unknown keys and bad values are errors that name the key, the value and what is
allowed. Relative paths are resolved against the config file's folder.

Example (TOML)::

    prep_dir = "prepared"          # output of 'svc-host train prepare' + 'features'
    max_steps = 4000               # or: epochs = 100
    batch_size = 8
    learning_rate = 1e-3
    log_interval = 200
    eval_interval = 800            # validate + write a checkpoint
    keep_ckpts = 3                 # 0 = keep all
    base_model = "presets/models/demo"   # optional: fine-tune from this model folder
    [architecture]
    channels = 128
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from svc_dsp.errors import TrainingError


@dataclass
class TrainConfig:
    """Fields users know from so-vits-svc, plus what this family needs.

    prep_dir: prepared + feature-extracted dataset folder (required).
    name: model name written to model.json (default: the run folder's name).
    epochs / max_steps: stop after whichever comes first (at least one is required). One epoch
        is as many steps as it takes to draw the training set's frames once in random crops.
    batch_size: crops per step (per process when distributed).
    segment_seconds: crop length the loss is computed on.
    learning_rate, lr_decay (per-epoch multiplier, so-vits-svc style), grad_clip (L2 norm; 0 = off).
    log_interval / eval_interval: steps between log lines / validation + checkpoint.
    keep_ckpts: newest checkpoints kept (0 = keep all); the newest good one is never deleted.
    all_in_mem: load every file's features and audio once instead of reading crops from disk.
    content_augment: share of crops whose content units come from a speaker-perturbed copy of the
        same audio (needs features extracted with ``--content-variants K``); the decoder then
        learns to turn other voices' less certain units into this voice's words. 0 = off.
    seed: initialisation and crop sampling (crops of step s are a pure function of seed, rank, s).
    architecture: 'hpn' architecture keys (channels, kernel_size, dilations, speaker_dim,
        n_harmonics, n_noise_bands, noise_seed); ignored keys are errors.
    base_model: a model folder (or catalog name) to fine-tune from; speakers are mapped by name,
        new speakers start from the mean speaker embedding.
    f0_range: [lo, hi] Hz written to model.json (the engine's F0 search range).
    fft_sizes: resolutions of the multi-resolution STFT loss.
    nan_rollback_after: consecutive non-finite steps before rolling back to the last checkpoint.
    val_max_seconds: validation uses at most this much of each validation file.
    time_limit_minutes: stop (validating and writing a checkpoint) once this session has trained
        this long (wall clock); re-running continues. None = no limit.
    cpu_limit_minutes: the same for the process's CPU time (all threads; rank 0's when distributed),
        for fixed compute budgets on shared machines.
    device: "cpu" or "cuda" ("auto" picks cuda when available).
    """

    prep_dir: str = ""
    name: str = ""
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 8
    segment_seconds: float = 1.0
    learning_rate: float = 1e-3
    lr_decay: float = 1.0
    grad_clip: float = 1.0
    log_interval: int = 200
    eval_interval: int = 800
    keep_ckpts: int = 3
    all_in_mem: bool = False
    content_augment: float = 0.0
    seed: int = 1234
    architecture: dict[str, Any] = field(default_factory=dict)
    base_model: str | None = None
    f0_range: list[float] = field(default_factory=lambda: [50.0, 1100.0])
    fft_sizes: list[int] = field(default_factory=lambda: [2048, 1024, 512, 256, 128])
    nan_rollback_after: int = 5
    val_max_seconds: float = 5.0
    device: str = "cpu"
    time_limit_minutes: float | None = None
    cpu_limit_minutes: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_POSITIVE_INT = ("batch_size", "log_interval", "eval_interval", "nan_rollback_after")


def _check(cfg: TrainConfig, where: str) -> None:
    def bad(key: str, allowed: str) -> TrainingError:
        return TrainingError(f"{where}: {key} = {getattr(cfg, key)!r}; allowed: {allowed}")

    if not cfg.prep_dir:
        raise TrainingError(f"{where}: 'prep_dir' is required (the folder made by 'svc-host train prepare')")
    if cfg.epochs is None and cfg.max_steps is None:
        raise TrainingError(f"{where}: give 'epochs' or 'max_steps' (or both: training stops at the first)")
    for key in ("epochs", "max_steps"):
        v = getattr(cfg, key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise bad(key, "an integer >= 1")
    for key in _POSITIVE_INT:
        v = getattr(cfg, key)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise bad(key, "an integer >= 1")
    if isinstance(cfg.keep_ckpts, bool) or not isinstance(cfg.keep_ckpts, int) or cfg.keep_ckpts < 0:
        raise bad("keep_ckpts", "an integer >= 0 (0 keeps all)")
    for key, lo, hi in (("learning_rate", 0.0, 1.0), ("segment_seconds", 0.05, 60.0), ("lr_decay", 0.0, 1.0),
                        ("val_max_seconds", 0.1, 3600.0)):
        v = getattr(cfg, key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not (lo < v <= hi) or not math.isfinite(v):
            raise bad(key, f"a number in ({lo}, {hi}]")
    v = cfg.content_augment
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
        raise bad("content_augment", "a share in [0, 1] (0 = off; e.g. 0.5 with features made with "
                                     "--content-variants 4)")
    if not isinstance(cfg.grad_clip, (int, float)) or cfg.grad_clip < 0:
        raise bad("grad_clip", "a number >= 0 (0 = off)")
    if not (isinstance(cfg.f0_range, list) and len(cfg.f0_range) == 2 and 0 < cfg.f0_range[0] < cfg.f0_range[1]):
        raise bad("f0_range", "[lo, hi] in Hz with 0 < lo < hi, e.g. [50, 1100]")
    if not cfg.fft_sizes or any(not isinstance(n, int) or n < 16 for n in cfg.fft_sizes):
        raise bad("fft_sizes", "a non-empty list of integers >= 16")
    for key in ("time_limit_minutes", "cpu_limit_minutes"):
        v = getattr(cfg, key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise bad(key, "a number of minutes > 0, or leave it out")
    if cfg.device not in ("cpu", "cuda", "auto"):
        raise bad("device", "'cpu', 'cuda' or 'auto'")
    from svc_dsp.models.hpn import ARCH_DEFAULTS

    unknown = sorted(set(cfg.architecture) - set(ARCH_DEFAULTS))
    if unknown:
        raise TrainingError(f"{where}: architecture key(s) {', '.join(unknown)} are unknown; allowed: "
                            f"{', '.join(sorted(ARCH_DEFAULTS))}")


def config_from_dict(data: dict[str, Any], base_dir: Path, where: str = "training config") -> TrainConfig:
    """Build and validate a :class:`TrainConfig`; relative paths resolve against ``base_dir``."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise TrainingError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed keys: {', '.join(sorted(known))}")
    cfg = TrainConfig(**data)
    if isinstance(cfg.f0_range, (list, tuple)):
        cfg.f0_range = [float(v) for v in cfg.f0_range]
    if isinstance(cfg.learning_rate, int):
        cfg.learning_rate = float(cfg.learning_rate)
    _check(cfg, where)
    cfg.prep_dir = str((base_dir / cfg.prep_dir).resolve())
    if cfg.base_model:
        p = base_dir / cfg.base_model
        cfg.base_model = str(p.resolve()) if p.is_dir() else cfg.base_model  # else: a catalog name
    return cfg


def load_config(path: Path) -> TrainConfig:
    """Read a JSON (``.json``) or TOML (any other suffix) training config."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"training config '{path}' does not exist; write one (see docs/training.md)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as e:
        raise TrainingError(f"training config '{path}' could not be parsed: {e}") from None
    if not isinstance(data, dict):
        raise TrainingError(f"training config '{path}' must hold a table/object of fields")
    return config_from_dict(data, path.parent.resolve(), f"training config '{path}'")
