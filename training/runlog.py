"""Run logging and the distributed context for training.

:class:`RunLog` writes plain text to ``run_dir/train.log`` (always) and stdout, and to
TensorBoard when ``torch.utils.tensorboard`` imports. Only rank 0 logs.

:func:`init_distributed` reads the environment torchrun sets (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``) and starts torch.distributed: gloo on CPU, nccl on CUDA.
"""
from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistContext:
    """Start torch.distributed when launched by torchrun with more than one process."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=device)
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistContext(rank, world, local, device)


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_true(ctx: DistContext, flag: bool) -> bool:
    """True when ``flag`` is True on every rank (so all ranks take the same branch)."""
    if not ctx.enabled:
        return flag
    import torch
    import torch.distributed as dist

    t = torch.tensor([0.0 if flag else 1.0])
    dist.all_reduce(t)
    return bool(t.item() == 0.0)


class RunLog:
    """Plain-text log (train.log + stdout) and optional TensorBoard scalars/audio (rank 0 only)."""

    def __init__(self, run_dir: Path, enabled: bool = True, echo: bool = True) -> None:
        self.enabled, self.echo = enabled, echo
        self.tb: Any = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self.fh = open(run_dir / "train.log", "a", encoding="utf-8")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from torch.utils.tensorboard import SummaryWriter
            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        except Exception:  # noqa: BLE001 - TensorBoard is optional
            self.tb = None

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.fh.write(f"{stamp} {text}\n")
        self.fh.flush()
        if self.echo:
            print(text, flush=True)

    def warn(self, text: str) -> None:
        self.line(f"WARNING: {text}")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.enabled and self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def audio(self, step: int, tag: str, wave: Any, sample_rate: int) -> None:
        if self.enabled and self.tb is not None:
            self.tb.add_audio(tag, wave, step, sample_rate=sample_rate)

    def close(self) -> None:
        if self.enabled:
            self.fh.close()
            if self.tb is not None:
                self.tb.close()
