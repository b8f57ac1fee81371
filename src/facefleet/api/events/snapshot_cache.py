"""Snapshots shared by the WebSocket clients of one tenant that connect together."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

REUSE_SECONDS = 1.0


@dataclass
class Built:
    seq: int
    at: float
    data: dict[str, Any]


@dataclass
class SnapshotCache:
    built: dict[str, Built] = field(default_factory=dict)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def fresh(self, tenant_id: str, seq: int) -> dict[str, Any] | None:
        entry = self.built.get(tenant_id)
        if entry and entry.seq == seq and time.monotonic() - entry.at < REUSE_SECONDS:
            return entry.data
        return None
