"""What integrations receive: the event's data, with sightings named (person, camera) and
their crop linked, and times as ISO 8601 UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.integrations.catalog import SIGHTING
from facefleet.api.storage.db import sightings_repo


def iso(ts: float | datetime) -> str:
    value = ts if isinstance(ts, datetime) else datetime.fromtimestamp(ts, UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def crop_url(public_url: str | None, sighting_id: int) -> str:
    path = f"/v1/sightings/{sighting_id}/crop"
    return f"{public_url}{path}" if public_url else path


async def enrich(
    session: AsyncSession,
    tenant_id: str,
    kind: str,
    data: dict[str, Any],
    public_url: str | None,
) -> dict[str, Any]:
    if kind != SIGHTING:
        return dict(data)
    names = await sightings_repo.names(session, tenant_id, int(data["id"]))
    return {
        "id": data["id"],
        "person_id": data["person_id"],
        "person_name": names.person_name if names and data["person_id"] is not None else None,
        "known": data["known"],
        "camera_id": data["camera_id"],
        "camera_name": names.camera_name if names else None,
        "first_seen": iso(float(data["first_seen"])),
        "last_seen": iso(float(data["last_seen"])),
        "best_distance": data["best_distance"],
        "frames": data["frames"],
        "track_id": data["track_id"],
        "worker_id": data["worker_id"],
        "crop_url": crop_url(public_url, int(data["id"])) if names and names.has_crop else None,
    }
