"""API keys: generation, hashing and the principal a request acts as."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
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
    # When the key stops working (its expiry), in the one clock's seconds; None: never.
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

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
    """Verified keys kept in memory for a short time, so heartbeats cost no database read.

    An entry is fresh for half the cache time, then verified again in the background while
    it keeps serving; past the cache time it is not trusted without a new read (except
    during a database outage). So a revoked key stops working within the cache time even on
    a replica that missed the revocation's broadcast; ``end`` applies the broadcast at once.
    """

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._refreshing: dict[str, asyncio.Task[Principal | None]] = {}
        # When each key whose end was broadcast stops working: a verification that read the
        # row before the change cannot cache the key beyond it.
        self._ends: dict[int, float] = {}

    def get(self, key_hash: str) -> Principal | None:
        """The key's principal while it is fresh (younger than half the cache time)."""
        entry = self._entries.get(key_hash)
        if entry is None or time.monotonic() - entry[1] >= self._ttl / 2:
            return None
        return entry[0]

    def aging(self, key_hash: str) -> Principal | None:
        """The key's principal while it is still within the cache time but due a re-check."""
        entry = self._entries.get(key_hash)
        if entry is None or time.monotonic() - entry[1] >= self._ttl:
            return None
        return entry[0]

    def refresh(
        self, key_hash: str, verify: Callable[[], Awaitable[Principal | None]]
    ) -> asyncio.Task[Principal | None]:
        """Verify a cached key again in the background, once at a time per key."""
        running = self._refreshing.get(key_hash)
        if running is not None:
            return running
        task: asyncio.Task[Principal | None] = asyncio.ensure_future(verify())
        self._refreshing[key_hash] = task

        def done(finished: asyncio.Task[Principal | None]) -> None:
            self._refreshing.pop(key_hash, None)
            # A failed read is tried again by a later request; nothing waits for this one.
            if not finished.cancelled():
                finished.exception()

        task.add_done_callback(done)
        return task

    def refreshing(self, key_hash: str) -> bool:
        return key_hash in self._refreshing

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
        self._entries[key_hash] = (self.bounded(principal), time.monotonic())

    def bounded(self, principal: Principal) -> Principal:
        """The principal with its end brought forward to a broadcast one."""
        end = self._ends.get(principal.key_id)
        if end is None or (principal.expires_at is not None and principal.expires_at <= end):
            return principal
        return replace(principal, expires_at=end)

    def end(self, key_id: int, at: float) -> None:
        """The key stops working at ``at`` (revoked: now; rotated with an overlap: later)."""
        if len(self._ends) > 100_000:
            self._ends.clear()
        self._ends[key_id] = min(at, self._ends.get(key_id, at))
        for key_hash, (principal, verified) in list(self._entries.items()):
            if principal.key_id == key_id:
                self._entries[key_hash] = (self.bounded(principal), verified)

    def forget(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)
