"""Gallery bodies: people, their enrolled faces, recognition results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from facefleet.protocol.gallery import GalleryOut as GalleryOut


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    external_ref: str | None = Field(
        default=None, max_length=200, description="Your own identifier for this person."
    )
    attributes: dict[str, Any] = Field(default_factory=dict)


class PersonUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    external_ref: str | None = Field(default=None, max_length=200)
    attributes: dict[str, Any] | None = None


class BoxOut(BaseModel):
    left: int
    top: int
    right: int
    bottom: int


class FaceOut(BaseModel):
    id: int
    person_id: int
    model: str
    box: BoxOut
    sharpness: float
    source_name: str
    created_at: datetime
    thumbnail_url: str | None


class PersonOut(BaseModel):
    id: int
    name: str
    external_ref: str | None
    attributes: dict[str, Any]
    face_count: int
    created_at: datetime
    updated_at: datetime


class PersonDetail(PersonOut):
    faces: list[FaceOut]


class PersonPage(BaseModel):
    items: list[PersonOut]
    total: int
    offset: int
    limit: int


class EnrollResponse(BaseModel):
    person_id: int
    faces: list[FaceOut]
    gallery_version: int


class RecognizedFace(BaseModel):
    box: BoxOut
    person_id: int | None = Field(description="None when the face matches nobody enrolled.")
    person_name: str | None
    distance: float | None = Field(description="Distance to the best match (lower is closer).")
    known: bool


class RecognizeResponse(BaseModel):
    faces: list[RecognizedFace]
    threshold: float
    gallery_version: int
    model: str
