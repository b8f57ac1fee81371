"""Tenant settings bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MAX_RETENTION_DAYS = 36_500


class TenantSettingsOut(BaseModel):
    tenant_id: str
    name: str
    match_threshold: float
    match_ratio: float = Field(
        description=(
            "A match must be at most this fraction of the distance to the second-nearest "
            "person and to the person's negative examples (1: no margin)."
        )
    )
    sighting_retention_days: int | None = Field(
        description="Days sightings are kept, by when they were last seen (None: always)."
    )
    crop_retention_days: int | None = Field(
        description="Days sightings keep their face crop and embedding (None: as long as they)."
    )
    gallery_version: int


class TenantSettingsUpdate(BaseModel):
    """Only the fields sent change; send null to keep sightings or crops without limit."""

    model_config = ConfigDict(extra="forbid")
    match_threshold: float | None = Field(default=None, gt=0, le=2.0)
    match_ratio: float | None = Field(default=None, gt=0, le=1.0)
    sighting_retention_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
    crop_retention_days: int | None = Field(default=None, ge=1, le=MAX_RETENTION_DAYS)
