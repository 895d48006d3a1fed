"""Entry point for distributed (and plain) training runs.

    torchrun --nproc_per_node 2 -m training.fit_main RUN_DIR [CONFIG]
    python -m training.fit_main RUN_DIR [CONFIG]

Every process runs :func:`training.fit.fit`; torch.distributed starts from torchrun's
environment (gloo on CPU, nccl on CUDA) and rank 0 writes logs and checkpoints.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.fit_main", description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("config", type=Path, nargs="?", default=None)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0 = torch's default)")
    args = ap.parse_args(argv)
    import torch

    from svc_dsp.errors import SvcError
    from training.fit import fit

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        fit(args.run_dir, args.config)
    except SvcError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
