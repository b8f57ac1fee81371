"""Histograms scraped from a server's /metrics, and what two scrapes tell in between: how many
observations, which bucket holds a quantile, how many fell above a bound."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from benchlib.report import fmt, ms

Buckets = dict[float, float]  # upper bound -> cumulative count


@dataclass(frozen=True)
class Series:
    """A histogram's buckets, summed over the samples whose labels include ``labels``."""

    histogram: str  # the metric's name, without _bucket
    labels: dict[str, str] = field(default_factory=dict)


def scrape_histograms(base_url: str, wanted: dict[str, Series]) -> dict[str, Buckets]:
    """The buckets of each wanted series, by the caller's name for it."""
    resp = httpx.get(f"{base_url}/metrics", timeout=60.0)
    resp.raise_for_status()
    out: dict[str, Buckets] = {name: {} for name in wanted}
    by_sample: dict[str, list[tuple[str, Series]]] = {}
    for name, series in wanted.items():
        by_sample.setdefault(f"{series.histogram}_bucket", []).append((name, series))
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            for name, series in by_sample.get(sample.name, ()):
                if any(sample.labels.get(k) != v for k, v in series.labels.items()):
                    continue
                bound = float(sample.labels["le"])
                out[name][bound] = out[name].get(bound, 0.0) + sample.value
    return out


def bucket_delta(before: Buckets, after: Buckets) -> Buckets:
    return {le: after[le] - before.get(le, 0.0) for le in sorted(after)}


def observed(buckets: Buckets) -> int:
    return int(buckets.get(math.inf, 0.0))


def bucket_quantile(buckets: Buckets, q: float) -> float | None:
    """The upper bound of the bucket holding quantile q (inf past the last finite bound)."""
    total = observed(buckets)
    if total <= 0:
        return None
    for le, count in sorted(buckets.items()):
        if count >= q * total:
            return le
    return math.inf


def above(buckets: Buckets, bound: float) -> int:
    """Observations above ``bound`` (which must be one of the bucket bounds)."""
    return observed(buckets) - int(buckets.get(bound, 0.0))


# The control plane's own view of a window: its heartbeat latency (from the request's first
# byte to its last), how late its event loop ran a 100 ms timer, its full garbage collections.
CONTROL_PLANE = {
    "heartbeat": Series(
        "facefleet_http_request_duration_seconds",
        {"route": "/v1/workers/{worker_id}/heartbeat", "status_class": "2xx"},
    ),
    "loop_lag": Series("facefleet_event_loop_lag_seconds"),
    "gc_full": Series("facefleet_gc_pause_seconds", {"generation": "2"}),
}


def control_plane_view(before: dict[str, Buckets], after: dict[str, Buckets]) -> dict[str, Any]:
    """What two scrapes of CONTROL_PLANE tell about the time between them."""
    hb, lag, gc_full = (bucket_delta(before[k], after[k]) for k in CONTROL_PLANE)
    return {
        "heartbeats": observed(hb),
        "heartbeat_p99_le_ms": ms(bucket_quantile(hb, 0.99)),
        "heartbeats_over_50ms": above(hb, 0.05),
        "loop_probes": observed(lag),
        "loop_lag_p99_le_ms": ms(bucket_quantile(lag, 0.99)),
        "loop_stalls_over_50ms": above(lag, 0.05),
        "loop_stalls_over_250ms": above(lag, 0.25),
        "full_gcs": observed(gc_full),
        "full_gc_p100_le_ms": ms(bucket_quantile(gc_full, 1.0)),
    }


def view_rows(view: dict[str, Any]) -> list[tuple[str, str]]:
    """control_plane_view as (name, value) rows for a report; none for an empty view."""
    if not view:
        return []
    return [
        (
            "server-side heartbeat p99",
            f"<= {fmt(view['heartbeat_p99_le_ms'])} ms (histogram bucket), "
            f"{view['heartbeats_over_50ms']} of {view['heartbeats']} over 50 ms",
        ),
        (
            "server event loop lag p99",
            f"<= {fmt(view['loop_lag_p99_le_ms'])} ms; stalls over 50 ms: "
            f"{view['loop_stalls_over_50ms']}, over 250 ms: "
            f"{view['loop_stalls_over_250ms']} (of {view['loop_probes']} probes)",
        ),
        (
            "server full garbage collections",
            f"{view['full_gcs']}, the longest <= {fmt(view['full_gc_p100_le_ms'])} ms",
        ),
    ]
