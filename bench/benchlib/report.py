"""How the benchmarks print and save their figures: number formats, aligned tables and rows,
and standard JSON (NaN and infinities as null)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def fmt(value: float | None, spec: str = ".0f", unit: str = "") -> str:
    """``value`` formatted, or n/a when it is missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:{spec}}{unit}"


def pct(share: float | None) -> str:
    """A share of one core (1.0 = one core busy) as a percentage."""
    return fmt(None if share is None else share * 100, ".0f", "%")


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


@dataclass(frozen=True)
class Column:
    title: str
    width: int
    spec: str = ".1f"  # for numbers; strings are printed as they are


class Table:
    """Fixed-width text columns: the first left-aligned, the others right-aligned."""

    def __init__(self, *columns: Column) -> None:
        self.columns = columns

    def _cells(self, values: tuple[object, ...]) -> str:
        cells = []
        for k, (column, value) in enumerate(zip(self.columns, values, strict=True)):
            if isinstance(value, float | int) and not isinstance(value, bool):
                text = fmt(value, column.spec)
            else:
                text = "n/a" if value is None else str(value)
            cells.append(text.ljust(column.width) if k == 0 else text.rjust(column.width))
        return "".join(cells)

    def header(self) -> str:
        line = self._cells(tuple(c.title for c in self.columns))
        return f"{line}\n{'-' * len(line)}"

    def row(self, *values: object) -> str:
        return self._cells(values)


def aligned(rows: list[tuple[str, str]]) -> str:
    """``name  value`` lines with the values in one column."""
    width = max((len(name) for name, _ in rows), default=0)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so that it is standard JSON; an infinite
    key (a histogram's last bucket bound) is written as Prometheus writes it, "+Inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {_key(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def _key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return "+Inf" if key > 0 else "-Inf" if key < 0 else "NaN"
    return key


def write_json(path: Path, payload: Any) -> None:
    text = json.dumps(finite(payload), indent=2, default=str, allow_nan=False)
    path.write_text(text + "\n")
    print(f"\nresults written to {path}")
