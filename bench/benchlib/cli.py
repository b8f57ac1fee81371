"""What every benchmark's command line shares: ``--quick``, ``--json``, ``--target``, and
its exit code: 0 when every target is met, 1 when one is missed or could not be measured,
2 for bad options, 3 when the run failed before it could measure, 130 on Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchlib.processes import BenchError, terminate_on_sigterm
from benchlib.report import write_json
from benchlib.targets import Targets

EXIT_FAILED = 3
EXIT_INTERRUPTED = 130


def parser(description: str, targets: Targets, quick: str) -> argparse.ArgumentParser:
    """A parser with the shared options; ``quick`` says what --quick shortens."""
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help=f"a smoke run, not a result: {quick}")
    p.add_argument("--json", type=Path, dest="json_path", help="also write the results here")
    targets.add_option(p)
    return p


def parse(
    p: argparse.ArgumentParser, targets: Targets, argv: list[str] | None
) -> argparse.Namespace:
    ns = p.parse_args(argv)
    targets.configure(p, ns.target)
    return ns


def run(body: Callable[[], int]) -> int:
    """``body``'s exit code; a failed run or an interruption stops its processes first."""
    try:
        with terminate_on_sigterm():
            return body()
    except BenchError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception:  # a bug or an unreachable service: the traceback says which
        traceback.print_exc()
        print("failed: the run stopped on the error above", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; the processes it started are stopped", file=sys.stderr)
        return EXIT_INTERRUPTED


def finish(targets: Targets, payload: dict[str, Any], json_path: Path | None) -> int:
    """Print the verdict, write the JSON file if asked, return the exit code."""
    print(f"\n{targets.verdict()}")
    if json_path is not None:
        payload["targets"] = targets.as_json()
        write_json(json_path, payload)
    return targets.exit_code()
