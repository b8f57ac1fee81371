"""Process CPU and memory for the heartbeat."""

from __future__ import annotations

import psutil

_process = psutil.Process()
_process.cpu_percent(None)  # the first call only primes the counter


def sample() -> dict[str, float]:
    return {
        "cpu_percent": round(_process.cpu_percent(None), 1),
        "memory_mb": round(_process.memory_info().rss / 1_048_576, 1),
    }
