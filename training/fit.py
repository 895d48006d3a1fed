"""Stage 3: fit the 'hpn' decoder (family 'hpn', or 'hpnw' on Whisper units) on cached features with a
multi-resolution STFT loss.

Resume = run the same command again: the newest complete checkpoint in
``run_dir/checkpoints/`` is loaded (a damaged newest one is skipped with a warning); if
checkpoints exist but none loads, training stops instead of restarting from step 0.
A non-finite loss or gradient skips the step; ``nan_rollback_after`` such steps in a row roll
back to the last good checkpoint and halve the learning rate. Under torchrun
(``torchrun --nproc_per_node N -m training.fit_main RUN_DIR CONFIG``) the decoder runs in
DistributedDataParallel; rank 0 writes logs and checkpoints.
"""
from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from svc_dsp.errors import TrainingError
from svc_dsp.fileops import write_atomic
from training.config import TrainConfig, load_config

#: one record per fit session of a run (see :meth:`Trainer.record_session`)
SESSIONS_NAME = "sessions.json"


MAX_ROLLBACKS = 3


@dataclass
class FitResult:
    """Where a run ended: final step, last logged losses, throughput, newest checkpoint."""

    step: int
    losses: dict[str, float] = field(default_factory=dict)
    steps_per_s: float = 0.0
    audio_s_per_s: float = 0.0
    checkpoint: str | None = None
    resumed_from: int | None = None


def _compute_loss(loss_fn: Any, wave: Any, target: Any) -> tuple[Any, dict[str, Any]]:
    """The training objective (module-level so tests can inject a non-finite loss)."""
    return loss_fn(wave, target)


class _Decoder:
    """Builds the torch module trained here: frame features -> waveform through HpnNet."""

    @staticmethod
    def module(net: Any) -> Any:
        import torch
        from torch import nn

        class FrameDecoder(nn.Module):
            def __init__(self, net: Any) -> None:
                super().__init__()
                self.net = net

            def forward(self, units: torch.Tensor, f0: torch.Tensor, loud: torch.Tensor,
                        spk: torch.Tensor) -> torch.Tensor:
                n = self.net
                b = units.shape[0]
                dev = units.device
                dec = [torch.zeros(s, device=dev) for s in n.decoder_state_shapes(b)]
                amps, noise, _ = n.frame_params(units, f0, loud, spk, dec)
                syn = [s.to(dev) for s in n.synth.init_state(b)]
                wave, _ = n.synth(amps, noise, f0, syn)
                return wave

        return FrameDecoder(net)


class Trainer:
    """One training run; :func:`fit` is the public entry point."""

    def __init__(self, run_dir: Path, cfg: TrainConfig, echo: bool = True) -> None:
        import torch

        from training.data import CropSampler, read_speakers
        from training.features import read_features_meta
        from training.losses import MultiResolutionSTFTLoss
        from training.model_setup import base_model_init, build_model, load_run_encoder, model_config
        from training.prepare import read_prepared
        from training.runlog import RunLog, init_distributed

        self.run_dir, self.cfg = run_dir, cfg
        self.ctx = init_distributed(cfg.device)
        self.log = RunLog(run_dir, enabled=self.ctx.is_main, echo=echo)
        prep = Path(cfg.prep_dir)
        self.prep_meta, self.feats_meta = read_prepared(prep), read_features_meta(prep)
        self.speakers = read_speakers(prep)
        encoder = load_run_encoder(self.feats_meta)
        sr, hop = int(self.feats_meta["sample_rate"]), int(self.feats_meta["hop"])
        self.sr, self.hop = sr, hop
        arch, init_weights, notes = dict(cfg.architecture), None, []
        if cfg.base_model:
            arch, init_weights, notes = base_model_init(cfg, self.feats_meta["encoder"], list(self.speakers))
        self.model_cfg = model_config(cfg, cfg.name or run_dir.name, sr, hop, list(self.speakers),
                                      self.feats_meta["encoder"], arch)
        torch.manual_seed(cfg.seed)
        self.model = build_model(self.model_cfg, encoder, init_weights)
        for n in notes:
            self.log.line(f"base model: {n}")
        net = self.model.net
        net.train()
        for p in net.encoder.parameters():
            p.requires_grad_(False)
        self.params = [p for n, p in net.named_parameters() if not n.startswith("encoder.")]
        self.decoder = _Decoder.module(net).to(self.ctx.device)
        self.ddp = self.decoder
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            self.ddp = DDP(self.decoder)
        self.opt = torch.optim.Adam(self.params, lr=cfg.learning_rate, betas=(0.8, 0.99), eps=1e-8)
        self.loss_fn = MultiResolutionSTFTLoss(cfg.fft_sizes).to(self.ctx.device)
        self.train_data = CropSampler(prep, "train", self.speakers, hop, all_in_mem=cfg.all_in_mem,
                                      content_augment=cfg.content_augment)
        self.val_data = CropSampler(prep, "val", self.speakers, hop, all_in_mem=cfg.all_in_mem)
        # context: every frame in the loss sees the decoder's full receptive field
        self.context = net.stack.receptive_field - 1 + net.conv_in.pad
        self.frames = max(1, round(cfg.segment_seconds * sr / hop))
        per_step = self.frames * cfg.batch_size * self.ctx.world
        self.steps_per_epoch = max(1, math.ceil(self.train_data.total_frames / per_step))
        limits = [cfg.max_steps or math.inf, (cfg.epochs or math.inf) * self.steps_per_epoch]
        self.total_steps = int(min(limits))
        self.step, self.lr_scale, self.last_losses, self.rollbacks = 0, 1.0, {}, 0
        self.initial = self._snapshot()

    # -- state ---------------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any]:
        from training.checkpoints import optimizer_to_flat

        import torch

        flat, groups = optimizer_to_flat(self.opt.state_dict())
        return {"model": self.model.decoder_tensors(), "optimizer": flat, "groups": groups,
                "rng": {"torch_cpu": torch.get_rng_state().numpy()}}

    def _restore(self, model: dict[str, np.ndarray], optimizer: dict[str, np.ndarray], groups: list[dict[str, Any]],
                 rng: dict[str, np.ndarray]) -> None:
        import torch

        from svc_dsp.models.folder import check_shapes
        from training.checkpoints import optimizer_from_flat

        expected = {k: tuple(v.shape) for k, v in self.model.decoder_tensors().items()}
        try:
            check_shapes(model, expected, "checkpoint")
        except Exception as e:  # noqa: BLE001
            raise TrainingError(f"{e}. The config's architecture or speakers changed since this run's checkpoints "
                                f"were written; restore the old config or start a new run folder") from None
        sd = {k: torch.from_numpy(np.array(v)) for k, v in model.items()}
        self.model.net.load_state_dict(sd, strict=False)
        self.opt.load_state_dict(optimizer_from_flat(optimizer, groups))
        if "torch_cpu" in rng:
            torch.set_rng_state(torch.from_numpy(np.array(rng["torch_cpu"], dtype=np.uint8)))

    def _state_json(self) -> dict[str, Any]:
        from training.checkpoints import optimizer_to_flat

        _, groups = optimizer_to_flat(self.opt.state_dict())
        return {"epoch": self.step // self.steps_per_epoch, "lr_scale": self.lr_scale, "rollbacks": self.rollbacks,
                "losses": self.last_losses,
                "param_groups": groups, "model_config": self.model_cfg, "train_config": self.cfg.to_dict(),
                "seed": self.cfg.seed, "world_size": self.ctx.world}

    def save(self) -> Path | None:
        from training.checkpoints import prune_checkpoints, save_checkpoint

        path = None
        if self.ctx.is_main:
            snap = self._snapshot()
            path = save_checkpoint(self.run_dir, self.step, snap["model"], snap["optimizer"], snap["rng"],
                                   self._state_json())
            pruned = prune_checkpoints(self.run_dir, self.cfg.keep_ckpts, path)
            self.log.line(f"checkpoint {path.name} written" + (f"; pruned {len(pruned)}" if pruned else ""))
        from training.runlog import barrier

        barrier(self.ctx)
        return path

    def resume(self) -> int | None:
        """Load the newest good checkpoint, if any; returns its step."""
        from training.checkpoints import latest_checkpoint, load_checkpoint
        from training.runlog import broadcast_object

        chosen = None
        if self.ctx.is_main:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ck = latest_checkpoint(self.run_dir)
            for w in caught:
                self.log.warn(str(w.message))
                warnings.warn(str(w.message), stacklevel=2)
            chosen = str(ck.path) if ck is not None else None
        chosen = broadcast_object(self.ctx, chosen)
        if chosen is None:
            return None
        ck = load_checkpoint(Path(chosen))
        self._restore(ck.model, ck.optimizer, ck.state["param_groups"], ck.rng)
        self.step, self.lr_scale = ck.step, float(ck.state.get("lr_scale", 1.0))
        self.rollbacks = int(ck.state.get("rollbacks", 0))
        self.last_losses = dict(ck.state.get("losses", {}))
        return ck.step

    def _rollback(self) -> None:
        from training.checkpoints import latest_checkpoint

        ck = latest_checkpoint(self.run_dir, quarantine=False) if self.ctx.is_main else None
        from training.runlog import broadcast_object

        path = broadcast_object(self.ctx, str(ck.path) if ck is not None else None)
        self.rollbacks += 1
        if self.rollbacks > MAX_ROLLBACKS:
            raise TrainingError(f"training produced non-finite losses again after {MAX_ROLLBACKS} rollbacks "
                                f"(learning rate scale now {self.lr_scale:g}); lower learning_rate, check the data "
                                f"for NaN/inf or silent files, or start from another checkpoint")
        self.lr_scale *= 0.5
        if path is None:
            s = self.initial
            self._restore(s["model"], s["optimizer"], s["groups"], s["rng"])
            self.step = 0
            where = "the initial weights"
        else:
            from training.checkpoints import load_checkpoint

            ck = load_checkpoint(Path(path))
            self._restore(ck.model, ck.optimizer, ck.state["param_groups"], ck.rng)
            self.step, where = ck.step, f"checkpoint {Path(path).name}"
        self.log.warn(f"{self.cfg.nan_rollback_after} non-finite steps in a row: rolled back to {where} "
                      f"(step {self.step}) and halved the learning rate (scale {self.lr_scale:g})")

    # -- steps ---------------------------------------------------------------------------
    def _lr(self) -> float:
        return self.cfg.learning_rate * self.lr_scale * self.cfg.lr_decay ** (self.step // self.steps_per_epoch)

    def _tensors(self, batch: Any) -> tuple[Any, ...]:
        import torch

        d = self.ctx.device
        return (torch.from_numpy(batch.units).to(d), torch.from_numpy(batch.f0).to(d),
                torch.from_numpy(batch.energy).to(d), torch.from_numpy(batch.spk).to(d),
                torch.from_numpy(batch.audio).to(d))

    def train_step(self) -> tuple[bool, dict[str, float]]:
        """One optimizer step; returns (finite, losses). Non-finite steps change nothing."""
        import torch

        from training.runlog import all_true

        # crops depend on (seed, rank, step) only, so a resumed run draws what an uninterrupted one
        # would; after a rollback the crops change, or the same bad batch would come back
        rng = np.random.default_rng([self.cfg.seed, self.ctx.rank, self.step, self.rollbacks])
        batch = self.train_data.batch(rng, self.cfg.batch_size, self.frames, self.context)
        units, f0, loud, spk, target = self._tensors(batch)
        wave = self.ddp(units, f0, loud, spk)[:, batch.context * self.hop:]
        loss, parts = _compute_loss(self.loss_fn, wave, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        gnorm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        finite = all_true(self.ctx, bool(torch.isfinite(loss)) and bool(torch.isfinite(gnorm)))
        if not finite:
            self.opt.zero_grad(set_to_none=True)
            return False, {}
        for g in self.opt.param_groups:
            g["lr"] = self._lr()
        self.opt.step()
        return True, {"loss": float(loss.detach()), "sc": float(parts["sc"]), "mag": float(parts["mag"]),
                      "grad_norm": float(gnorm)}

    def evaluate(self) -> float | None:
        import torch

        if not self.val_data.items:
            return None
        self.decoder.eval()
        total, n = 0.0, 0
        max_frames = max(1, round(self.cfg.val_max_seconds * self.sr / self.hop))
        first = None
        with torch.no_grad():
            for it in self.val_data.items:
                batch = self.val_data.whole(it, max_frames)
                units, f0, loud, spk, target = self._tensors(batch)
                wave = self.decoder(units, f0, loud, spk)
                loss, _ = self.loss_fn(wave, target)
                total, n = total + float(loss), n + 1
                first = wave[0] if first is None else first
        self.decoder.train()
        if first is not None:
            self.log.audio(self.step, "val/first", first.cpu().clamp(-1, 1), self.sr)
        return total / max(1, n)

    def _out_of_time(self, deadline: float, cpu_deadline: float) -> bool:
        from training.runlog import all_true

        if deadline == math.inf and cpu_deadline == math.inf:
            return False
        in_time = time.monotonic() < deadline and (not self.ctx.is_main or time.process_time() < cpu_deadline)
        return not all_true(self.ctx, in_time)

    def record_session(self, first_step: int, wall_s: float, cpu_s: float) -> None:
        """Append this session (steps, limits, torch threads, wall and CPU minutes used) to
        ``run_dir/sessions.json``: what a resumed run cost in all, for the exported model's record (a
        session killed before its end leaves none)."""
        import torch

        path, c = self.run_dir / SESSIONS_NAME, self.cfg
        sessions = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
        sessions.append({"steps": [first_step, self.step], "cpu_limit_minutes": c.cpu_limit_minutes,
                         "time_limit_minutes": c.time_limit_minutes, "torch_threads": torch.get_num_threads(),
                         "wall_minutes": round(wall_s / 60.0, 1), "cpu_minutes": round(cpu_s / 60.0, 1)})
        write_atomic(path, json.dumps(sessions, indent=1))

    def run(self) -> FitResult:
        resumed = self.resume()
        c = self.cfg
        if resumed is not None:
            self.log.line(f"resumed from checkpoint step {resumed} ({self.total_steps} steps in total)")
        else:
            self.log.line(f"new run: {len(self.train_data.items)} train / {len(self.val_data.items)} val files, "
                          f"{len(self.speakers)} speaker(s), {sum(p.numel() for p in self.params)} parameters, "
                          f"{self.steps_per_epoch} steps per epoch, {self.total_steps} steps, world {self.ctx.world}")
            if self.ctx.is_main:
                write_atomic(self.run_dir / "train_config.json", json.dumps(c.to_dict(), indent=1, ensure_ascii=False))
        bad_streak, acc, acc_n = 0, {}, 0
        t_log, steps_since, t_start, steps_done = time.monotonic(), 0, time.monotonic(), 0
        cpu_start, first_step = time.process_time(), self.step
        saved_at = resumed
        deadline = t_start + 60.0 * c.time_limit_minutes if c.time_limit_minutes else math.inf
        cpu_deadline = time.process_time() + 60.0 * c.cpu_limit_minutes if c.cpu_limit_minutes else math.inf
        while self.step < self.total_steps:
            if self._out_of_time(deadline, cpu_deadline):
                self.log.line(f"time limit reached at step {self.step} (wall {c.time_limit_minutes} min, "
                              f"CPU {c.cpu_limit_minutes} min)")
                if saved_at != self.step:
                    val = self.evaluate()
                    if val is not None:
                        self.last_losses["val_loss"] = val
                        self.log.line(f"step {self.step} validation loss {val:.4f}")
                break
            ok, losses = self.train_step()
            if not ok:
                bad_streak += 1
                self.log.warn(f"step {self.step}: non-finite loss or gradient; step skipped ({bad_streak} in a row)")
                if bad_streak >= c.nan_rollback_after:
                    self._rollback()
                    bad_streak = 0
                continue
            bad_streak = 0
            self.step += 1
            steps_since, steps_done = steps_since + 1, steps_done + 1
            for k, v in losses.items():
                acc[k] = acc.get(k, 0.0) + v
            acc_n += 1
            if self.step % c.log_interval == 0 or self.step == self.total_steps:
                dt = max(1e-9, time.monotonic() - t_log)
                mean = {k: v / acc_n for k, v in acc.items()}
                sps = steps_since / dt
                aps = sps * c.batch_size * self.ctx.world * self.frames * self.hop / self.sr
                self.last_losses = {**self.last_losses, **{f"train_{k}": v for k, v in mean.items()}}
                self.log.line(f"step {self.step} epoch {self.step // self.steps_per_epoch} loss {mean['loss']:.4f} "
                              f"(sc {mean['sc']:.4f} mag {mean['mag']:.4f}) lr {self._lr():.2e} "
                              f"{sps:.2f} steps/s {aps:.1f} audio-s/s")
                self.log.scalars(self.step, {f"train/{k}": v for k, v in mean.items()})
                acc, acc_n, t_log, steps_since = {}, 0, time.monotonic(), 0
            if self.step % c.eval_interval == 0 or self.step == self.total_steps:
                val = self.evaluate()
                if val is not None:
                    self.last_losses["val_loss"] = val
                    self.log.line(f"step {self.step} validation loss {val:.4f}")
                    self.log.scalars(self.step, {"val/loss": val})
                self.save()
                saved_at = self.step
        if saved_at != self.step:  # e.g. a finished run re-launched with unchanged max_steps
            self.save()
        wall = max(1e-9, time.monotonic() - t_start)
        sps = steps_done / wall
        result = FitResult(self.step, dict(self.last_losses), sps,
                           sps * c.batch_size * self.ctx.world * self.frames * self.hop / self.sr,
                           str(self.run_dir / "checkpoints" / f"step_{self.step:06d}"), resumed)
        self.log.line(f"done at step {self.step}: {result.steps_per_s:.2f} steps/s, "
                      f"{result.audio_s_per_s:.1f} audio-s/s over this session")
        if self.ctx.is_main:
            self.record_session(first_step, wall, time.process_time() - cpu_start)
        self.log.close()
        return result


def fit(run_dir: Path, config_path: Path | None = None, *, echo: bool = True) -> FitResult:
    """Train (or resume training) in ``run_dir`` with the JSON/TOML config at ``config_path``.

    Without ``config_path`` the config saved in ``run_dir/train_config.json`` by the first run is
    used. Re-running the same command resumes from the newest good checkpoint. Returns a
    :class:`FitResult`.
    """
    from training.config import config_from_dict

    run_dir = Path(run_dir)
    if config_path is None:
        saved = run_dir / "train_config.json"
        if not saved.is_file():
            raise TrainingError(f"no config given and '{saved}' does not exist; pass --config CONFIG.toml")
        cfg = config_from_dict(json.loads(saved.read_text(encoding="utf-8")), run_dir, f"'{saved}'")
    else:
        cfg = load_config(Path(config_path))
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(run_dir, cfg, echo=echo)
    try:
        return trainer.run()
    finally:
        if trainer.ctx.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
