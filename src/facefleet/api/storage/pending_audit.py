"""Audit rows produced on the hot path, written by the flusher in its next batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AuditEntry:
    tenant_id: str
    worker_pk: int
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


class PendingAudit:
    def __init__(self) -> None:
        self._entries: list[AuditEntry] = []

    def add(self, entry: AuditEntry) -> None:
        self._entries.append(entry)

    def take(self) -> list[AuditEntry]:
        entries, self._entries = self._entries, []
        return entries

    def put_back(self, entries: list[AuditEntry]) -> None:
        self._entries[:0] = entries
