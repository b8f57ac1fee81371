"""Sightings: who was seen by which camera, from when to when."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from facefleet.protocol.sightings import MAX_BATCH as MAX_BATCH
from facefleet.protocol.sightings import MAX_CROP_B64 as MAX_CROP_B64
from facefleet.protocol.sightings import SightingBatch as SightingBatch
from facefleet.protocol.sightings import SightingBatchResult as SightingBatchResult
from facefleet.protocol.sightings import SightingIn as SightingIn


class SightingOut(BaseModel):
    id: int
    camera_id: int
    camera_name: str | None
    person_id: int | None
    person_name: str | None
    known: bool
    stranger_id: int | None
    track_id: str
    epoch: int
    worker_id: str | None
    first_seen: datetime
    last_seen: datetime
    best_distance: float | None
    frames: int
    crop_url: str | None


class SightingPage(BaseModel):
    items: list[SightingOut]
    total: int
    offset: int
    limit: int
