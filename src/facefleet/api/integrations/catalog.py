"""The event types the integrations carry, and which of them MQTT publishes."""

from __future__ import annotations

# Every kind a service publishes that an integration may receive (the stats digest is
# liveness for the dashboard, not an event).
EVENT_TYPES: dict[str, str] = {
    "sighting": "a person (or an unknown face) seen by a camera, new or updated",
    "registered": "a worker registered",
    "status_changed": "a worker's status changed (online, suspect, draining, offline)",
    "shutdown_signalled": "a worker was told to stop, or said it is stopping",
    "deregistered": "a worker left the fleet",
    "camera_assigned": "a camera was leased to a worker",
    "camera_released": "a camera's lease ended",
    "command_created": "a command was queued for a worker",
    "command_acked": "a worker reported a command's result",
    "command_expired": "a command was not acknowledged in time",
    "gallery_changed": "people or faces were added, changed or removed",
}
# Sent only by the test-delivery call.
PING = "ping"
# Subscribes an endpoint to every type, including those added later.
ALL = "*"

SIGHTING = "sighting"
WORKER_KINDS = frozenset({"registered", "status_changed", "shutdown_signalled", "deregistered"})
MQTT_KINDS = WORKER_KINDS | {SIGHTING}

# The worker status topic says what an automation needs: is the worker working, leaving
# (no new cameras) or gone. "suspect" (missed heartbeats, leases still valid) is online.
_PUBLIC_STATUS = {
    "online": "online",
    "suspect": "online",
    "draining": "draining",
    "stopping": "draining",
    "offline": "offline",
    "deregistered": "offline",
}


def worker_status(kind: str, data: dict[str, object]) -> tuple[str, str] | None:
    """(online | draining | offline, the control plane's own status) of a worker event."""
    if kind == "registered":
        detail = "online"
    elif kind == "deregistered":
        detail = "deregistered"
    elif kind == "shutdown_signalled":
        detail = "stopping"
    elif kind == "status_changed":
        detail = str(data.get("to", ""))
    else:
        return None
    public = _PUBLIC_STATUS.get(detail)
    return None if public is None else (public, detail)
