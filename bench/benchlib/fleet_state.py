"""What a control plane says about its fleet: the status counts and lists of its API while the
fleet runs, and the event history in its database once it has stopped."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib.api import get_json
from benchlib.prometheus import CONTROL_PLANE, scrape_histograms


def fleet_checks(base_url: str, admin_key: str) -> dict[str, Any]:
    """The server's own histograms, then ``/v1/workers/stats`` and the suspect and offline
    lists, each with the seconds it took to answer."""
    # First, before the heavier queries below could show up in the server's histograms.
    server_view = scrape_histograms(base_url, CONTROL_PLANE)

    async def run() -> dict[str, Any]:
        stats, stats_s = await get_json(base_url, "/v1/workers/stats", admin_key)
        counts: dict[str, int] = {}
        list_s: dict[str, float] = {}
        for status in ("suspect", "offline"):
            path = f"/v1/workers?status={status}&limit=1"
            page, list_s[status] = await get_json(base_url, path, admin_key)
            counts[status] = int(page["total"])
        return {
            "stats": stats,
            "stats_seconds": stats_s,
            "listed": counts,
            "list_seconds": list_s,
            "server_view": server_view,
        }

    return asyncio.run(run())


def recorded_events(db: Path, window_start: float, window_end: float) -> dict[str, dict[str, int]]:
    """Worker events per kind and per part of the run (setup, window, after), read from a
    stopped server's SQLite database.

    The API only shows current statuses; a worker that went suspect and recovered is visible
    only in its history, so the whole fleet's history is counted here.
    """

    def stamp(t: float) -> str:
        # How the UTC column is stored on SQLite, so that text comparison orders correctly.
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT kind, CASE WHEN created_at < ? THEN 'setup' WHEN created_at < ? "
            "THEN 'window' ELSE 'after' END, count(*) FROM worker_events GROUP BY 1, 2",
            (stamp(window_start), stamp(window_end)),
        ).fetchall()
    out: dict[str, dict[str, int]] = {}
    for kind, part, count in rows:
        out.setdefault(str(kind), {"setup": 0, "window": 0, "after": 0})[str(part)] = int(count)
    return out


def describe_fleet(checks: dict[str, Any], events: dict[str, dict[str, int]]) -> str:
    """Lines for a report: what fleet_checks saw and what recorded_events counted."""
    workers = checks["stats"]["workers"]
    listed = checks["listed"].items()
    lines = [
        "GET /v1/workers/stats: "
        + ", ".join(f"{k} {v}" for k, v in workers.items() if v or k == "online")
        + f" (answered in {checks['stats_seconds'] * 1000:.0f} ms)",
        "GET /v1/workers?status=: "
        + ", ".join(f"{k} {v} ({checks['list_seconds'][k] * 1000:.0f} ms)" for k, v in listed),
    ]
    for kind in ("suspect", "offline", "recovered"):
        parts = events.get(kind, {})
        lines.append(
            f"history '{kind}' events: {parts.get('setup', 0)} during setup, "
            f"{parts.get('window', 0)} in the window, {parts.get('after', 0)} after it"
        )
    return "\n".join(lines)
