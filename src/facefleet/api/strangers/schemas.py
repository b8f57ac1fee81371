"""Stranger bodies: repeat visitors nobody has named yet, and their promotion."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facefleet.api.people.schemas import FaceOut, PersonOut
from facefleet.protocol.ids import Id
from facefleet.protocol.json_values import JsonObject

MAX_ENROLL = 10


class StrangerOut(BaseModel):
    id: int
    sightings: int = Field(description="Sightings of this face so far.")
    first_seen: datetime
    last_seen: datetime
    created_at: datetime
    crop_url: str | None = Field(description="The crop of its latest sighting that has one.")
    sightings_url: str
    promoted_to_person_id: int | None = Field(
        description="The person it was promoted to; its sightings are theirs now."
    )
    promoted_at: datetime | None


class StrangerPage(BaseModel):
    items: list[StrangerOut]
    total: int
    offset: int
    limit: int
    pending: int = Field(description="Unknown sightings still waiting to be clustered.")


class PromoteStranger(BaseModel):
    """Either a new person (``name`` and optional fields) or an existing ``person_id``."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    external_ref: str | None = Field(default=None, max_length=200)
    attributes: JsonObject = Field(default_factory=dict)
    person_id: Id | None = Field(default=None, description="Promote into this person.")
    enroll: int = Field(
        default=3,
        ge=0,
        le=MAX_ENROLL,
        description=(
            "How many of its sightings' crops to enroll as the person's faces (the most "
            "frames first; crops without a usable face are skipped and listed)."
        ),
    )

    @model_validator(mode="after")
    def _one_target(self) -> PromoteStranger:
        if (self.name is None) == (self.person_id is None):
            raise ValueError("give either name (a new person) or person_id (an existing one)")
        if self.person_id is not None and (self.external_ref or self.attributes):
            raise ValueError(
                "external_ref and attributes describe a new person: not with person_id"
            )
        return self


class SkippedCrop(BaseModel):
    sighting_id: int
    reason: str


class PromoteResponse(BaseModel):
    person: PersonOut
    stranger_id: int
    sightings_moved: int
    faces: list[FaceOut]
    skipped: list[SkippedCrop]
    gallery_version: int


class StrangerErasure(BaseModel):
    stranger_id: int
    sightings: int
    crops: int
    faces: int
    negatives: int
    audit_id: int
