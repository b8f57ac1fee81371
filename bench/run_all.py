"""Run every benchmark one after the other, each to its end even when an earlier one missed a
target, then list how each ended; exit 1 if any missed a target or failed.

    .venv/bin/python bench/run_all.py              # what `make bench` runs
    .venv/bin/python bench/run_all.py --quick      # `make bench-quick`: a smoke run of each
    .venv/bin/python bench/run_all.py gallery failover
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# Each benchmark, and the options of its smoke run.
BENCHMARKS = {
    "heartbeat": ["--quick"],
    "ws_fanout": ["--quick"],
    "failover": ["--quick"],
    "pipeline": ["--frames", "30", "--rounds", "1"],
    "gallery": ["--quick"],
    "replicas": ["--quick"],
    "sqlite_sync": ["--quick"],
}
ENDINGS = {0: "targets met", 1: "target missed", 2: "bad options", 3: "run failed"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(BENCHMARKS)} (all)")
    parser.add_argument("--quick", action="store_true", help="each benchmark's smoke run")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"no such benchmark: {', '.join(sorted(unknown))}")
    endings: list[tuple[str, int, float]] = []
    for name in args.names or list(BENCHMARKS):
        command = [sys.executable, str(BENCH_DIR / f"{name}.py")]
        command += BENCHMARKS[name] if args.quick else []
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        try:
            code = subprocess.run(command, check=False).returncode
        except KeyboardInterrupt:
            print(f"\ninterrupted during {name}", file=sys.stderr)
            return 130
        endings.append((name, code, time.monotonic() - started))
    print("\n=== benchmarks")
    for name, code, seconds in endings:
        ending = ENDINGS.get(code, "failed")
        print(f"{name:<12} exit {code:<4} {ending:<14} {seconds:6.0f} s")
    return 0 if all(code == 0 for _, code, _ in endings) else 1


if __name__ == "__main__":
    sys.exit(main())
