"""A benchmark's targets: each checked against its figure, stated next to it in the output,
and a missed one (or one that could not be measured) makes the run exit 1.

``--target NAME=VALUE`` replaces a limit for one run, for example with an impossible value to
see that a miss fails the run.
"""

from __future__ import annotations

import argparse
import math
import operator
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

Op = Literal["<", "<=", ">=", ">"]
_COMPARE: dict[Op, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
    ">": operator.gt,
}


@dataclass(frozen=True)
class Target:
    name: str  # what --target calls it
    what: str  # the figure, in words
    op: Op
    limit: float | None  # None: no target unless --target sets one
    unit: str = ""  # for absolute figures; their ratio to the limit is printed too
    spec: str = ".2f"  # how the figure is printed

    def describe(self) -> str:
        return "no target" if self.limit is None else f"target {self.op} {self.limit:g}{self.unit}"


@dataclass(frozen=True)
class Outcome:
    name: str
    what: str
    target: str
    value: float | None
    met: bool | None  # None: no target was set


class Targets:
    def __init__(self, *targets: Target) -> None:
        self._targets = {t.name: t for t in targets}
        self.outcomes: list[Outcome] = []

    def __getitem__(self, name: str) -> Target:
        return self._targets[name]

    def add_option(self, parser: argparse.ArgumentParser) -> None:
        listed = "; ".join(f"{t.name}: {t.what}, {t.describe()}" for t in self._targets.values())
        parser.add_argument(
            "--target",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=f"replace a target's limit for this run (repeatable). Targets: {listed}",
        )

    def configure(self, parser: argparse.ArgumentParser, overrides: list[str]) -> None:
        for item in overrides:
            name, sep, value = item.partition("=")
            if not sep or name not in self._targets:
                parser.error(f"--target {item}: expected NAME=VALUE, NAME one of {list(self)}")
            try:
                limit = float(value)
            except ValueError:
                parser.error(f"--target {item}: {value!r} is not a number")
            self._targets[name] = replace(self._targets[name], limit=limit)

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def check(self, name: str, value: float | None) -> str:
        """Record the figure against its target; the words to print next to it."""
        target = self._targets[name]
        measured = value is not None and not math.isnan(value)
        if target.limit is None:
            met = None
            text = target.describe()
        elif not measured:
            met = False
            text = f"{target.describe()}: MISSED, not measured"
        else:
            assert value is not None
            met = _COMPARE[target.op](value, target.limit)
            text = f"{target.describe()}: {'met' if met else 'MISSED'}"
            if target.unit and target.limit:
                text += f", {value / target.limit:.2f}x the limit"
        self.outcomes.append(Outcome(name, target.what, target.describe(), value, met))
        return text

    @property
    def missed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.met is False]

    def verdict(self) -> str:
        checked = [o for o in self.outcomes if o.met is not None]
        if not checked:
            return "targets: none set for this run"
        if not self.missed:
            return f"targets: all {len(checked)} met"
        return "targets MISSED: " + "; ".join(
            f"{o.what} {_value(o, self._targets[o.name])} ({o.target})" for o in self.missed
        )

    def exit_code(self) -> int:
        return 1 if self.missed else 0

    def as_json(self) -> list[dict[str, Any]]:
        return [asdict(o) for o in self.outcomes]


def _value(outcome: Outcome, target: Target) -> str:
    if outcome.value is None or math.isnan(outcome.value):
        return "not measured"
    return f"{outcome.value:{target.spec}}{target.unit}"
