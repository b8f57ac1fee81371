"""API keys: generation, hashing and the principal a request acts as."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    worker = "worker"
    viewer = "viewer"


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    role: Role
    key_id: int

    @property
    def can_read(self) -> bool:
        return self.role in (Role.admin, Role.viewer)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.admin


def new_key(role: Role) -> str:
    return f"ff_{role.value}_{secrets.token_urlsafe(32)}"


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    # Keys and session tokens are 256-bit random values, so a fast hash is enough: there is
    # nothing to brute-force, and verification stays off the heartbeat's critical path.
    return hashlib.sha256(secret.encode()).hexdigest()


def key_prefix(key: str) -> str:
    return key[:16]


class PrincipalCache:
    """Verified keys kept in memory for a short time, so heartbeats cost no database read."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._refreshing: dict[str, asyncio.Task[object]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        principal, expires = entry
        if time.monotonic() >= expires:
            return None
        return principal

    def expired(self, key_hash: str) -> bool:
        entry = self._entries.get(key_hash)
        return entry is not None and time.monotonic() >= entry[1]

    def refresh(self, key_hash: str, verify: Callable[[], Awaitable[object]]) -> None:
        """Verify a cached key again in the background, once at a time per key."""
        if key_hash in self._refreshing:
            return
        task: asyncio.Task[object] = asyncio.ensure_future(verify())
        self._refreshing[key_hash] = task

        def done(finished: asyncio.Task[object]) -> None:
            self._refreshing.pop(key_hash, None)
            # A failed read is tried again by a later request; nothing waits for this one.
            if not finished.cancelled():
                finished.exception()

        task.add_done_callback(done)

    def stale(self, key_hash: str) -> Principal | None:
        """The key's last verified principal, however old: only for when the database cannot
        be asked, so workers keep heartbeating through a database outage."""
        entry = self._entries.get(key_hash)
        return entry[0] if entry is not None else None

    def put(self, key_hash: str, principal: Principal) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[key_hash] = (principal, time.monotonic() + self._ttl)

    def forget(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)
