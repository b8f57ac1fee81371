"""Gallery bodies: people, their enrolled faces, recognition results."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from facefleet.api.sightings.schemas import SightingOut
from facefleet.protocol.gallery import GalleryOut as GalleryOut
from facefleet.protocol.ids import Id
from facefleet.protocol.json_values import JsonObject, StoredJson


class PersonCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    external_ref: str | None = Field(
        default=None, max_length=200, description="Your own identifier for this person."
    )
    attributes: JsonObject = Field(default_factory=dict)


class PersonUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    external_ref: str | None = Field(default=None, max_length=200)
    attributes: JsonObject | None = None


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
    attributes: StoredJson
    face_count: int
    created_at: datetime
    updated_at: datetime


class PersonDetail(PersonOut):
    faces: list[FaceOut]
    negative_count: int = Field(description="Faces an operator said are not this person.")
    match_threshold: float | None = Field(
        description=(
            "The person's own threshold, from the spread of their faces (two or more); "
            "a match needs the distance within it and within the camera's."
        )
    )


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
    ratio: float = Field(description="The ratio test's margin (see docs/gallery.md).")
    gallery_version: int
    model: str


class AssignSighting(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: Id = Field(description="Who the sighting shows.")
    enroll: bool = Field(
        default=True,
        description=(
            "Enroll the sighting's crop as one of the person's faces (checked like an "
            "uploaded photo); false only labels the sighting."
        ),
    )


class AssignResponse(BaseModel):
    sighting: SightingOut
    face: FaceOut | None = Field(description="The face enrolled from the crop, if any.")
    gallery_version: int


class NotPerson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: Id | None = Field(
        default=None, description="Who it is not (default: the person it is labelled with)."
    )


class NegativeOut(BaseModel):
    id: int
    person_id: int
    sighting_id: int | None
    created_at: datetime


class NotPersonResponse(BaseModel):
    sighting: SightingOut
    negative: NegativeOut
    gallery_version: int


class MoveFace(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: Id = Field(description="The person the face belongs to.")


class MergePeople(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into_person_id: Id = Field(description="The person who remains.")


class MergeResponse(BaseModel):
    person: PersonDetail
    faces_moved: int
    negatives_moved: int
    sightings_moved: int
    gallery_version: int


class ErasureReceipt(BaseModel):
    """What an erasure removed; the audit row keeps these counts and nothing else."""

    person_id: int
    faces: int
    negatives: int
    sightings: int
    crops: int
    strangers: int
    audit_id: int
    gallery_version: int


class AuditOut(BaseModel):
    id: int
    action: str = Field(
        description="person_erased, stranger_erased, stranger_promoted, people_merged or "
        "retention_pruned"
    )
    person_id: int | None
    stranger_id: int | None
    key_id: int | None = Field(description="The API key that acted (None: the pruner).")
    detail: dict[str, int] = Field(description="Counts of what was affected.")
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditOut]
    total: int
    offset: int
    limit: int
