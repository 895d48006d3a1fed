"""python -m benchmarks {offline|stream|...} [options]"""
from __future__ import annotations

import argparse
import importlib
import sys

SUITES = {"offline": "benchmarks.offline", "stream": "benchmarks.stream", "train": "benchmarks.train",
          "quality": "benchmarks.quality", "serve": "benchmarks.serve", "sovits": "benchmarks.sovits",
          "encoders": "benchmarks.encoders", "f0": "benchmarks.f0", "cluster": "benchmarks.cluster",
          "whisper": "benchmarks.whisper", "windowed": "benchmarks.windowed"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m benchmarks")
    ap.add_argument("suite", choices=sorted(SUITES))
    # the suite's own options (its --help included) go to the suite
    args, rest = (ap.parse_args(argv[:1]), argv[1:]) if argv and argv[0] in SUITES else ap.parse_known_args(argv)
    try:
        mod = importlib.import_module(SUITES[args.suite])
    except ModuleNotFoundError as e:
        print(f"benchmark suite '{args.suite}' is not available yet ({e})", file=sys.stderr)
        return 2
    return int(mod.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
