"""A key that stops working stops on every replica at once: the replica that revoked it (or
shortened its life) broadcasts its end on the event broker, and each replica's principal
cache applies it. A replica that misses the broadcast (disconnected from Redis at that
moment) re-reads the key within the auth cache time anyway (``deps.resolve_key``)."""

from __future__ import annotations

from facefleet.api.events.broker import Broadcast
from facefleet.api.state import AppState

KEY_ENDS = "key_ends"


async def announce_end(state: AppState, key_id: int, at: float) -> None:
    """Tell every replica that key ``key_id`` stops working at ``at`` (the one clock)."""
    await state.events.broadcast({"type": KEY_ENDS, "key_id": key_id, "at": at})


def follow_key_ends(state: AppState) -> None:
    """Apply every replica's announcements to this replica's principal cache."""

    def apply(message: Broadcast) -> None:
        if message.get("type") == KEY_ENDS:
            state.principals.end(int(message["key_id"]), float(message["at"]))

    state.events.on_broadcast(apply)
