"""Statistics the benchmarks report: percentiles, summaries, best-of rounds, ratios."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

T = TypeVar("T")


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no data."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(values_ms, 50),
        "p90_ms": percentile(values_ms, 90),
        "p99_ms": percentile(values_ms, 99),
        "max_ms": max(values_ms) if values_ms else math.nan,
        "mean_ms": statistics.fmean(values_ms) if values_ms else math.nan,
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median, min, max and mean; empty for no data."""
    if not values:
        return {}
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def ratio(value: float | None, baseline: float | None) -> float:
    """value / baseline, NaN when either is missing or the baseline is zero."""
    if value is None or baseline is None or baseline == 0:
        return math.nan
    return value / baseline


def interleaved(sides: dict[str, Callable[[], T]], rounds: int) -> dict[str, list[T]]:
    """Each side once per round, the order reversed every other round, so load from other
    processes and warm caches hit all sides alike; the results of every round, per side."""
    results: dict[str, list[T]] = {name: [] for name in sides}
    names = list(sides)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            results[name].append(sides[name]())
    return results


def merge_counts(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for one in counts:
        for key, value in one.items():
            total[key] = total.get(key, 0) + value
    return total
