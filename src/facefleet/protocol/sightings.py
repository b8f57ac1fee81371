"""Sightings as workers report them: batches of tracks under a camera lease's epoch."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_BATCH = 500
MAX_CROP_B64 = 90_000  # about 64 KB of JPEG


class SightingIn(BaseModel):
    """One track of a face on a camera; posting the same track_id again updates it."""

    model_config = ConfigDict(extra="forbid")
    track_id: str = Field(
        min_length=1,
        max_length=64,
        description="Unique per camera and epoch; posting it again updates the sighting.",
    )
    person_id: int | None = Field(description="None for a face that matched nobody.")
    first_seen: float = Field(gt=0, description="Unix time, seconds.")
    last_seen: float = Field(gt=0, description="Unix time, seconds.")
    best_distance: float | None = Field(default=None, ge=0)
    frames: int = Field(ge=1)
    crop_jpeg_b64: str | None = Field(default=None, max_length=MAX_CROP_B64, repr=False)


class SightingBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: int
    epoch: int = Field(ge=1, description="The camera lease's fencing epoch.")
    sightings: list[SightingIn] = Field(min_length=1, max_length=MAX_BATCH)


class SightingBatchResult(BaseModel):
    model_config = ConfigDict(extra="ignore")
    accepted: int
    ids: list[int] = Field(default_factory=list)
