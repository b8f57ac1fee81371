"""Sightings as workers report them: batches of tracks under a camera lease's epoch."""

from __future__ import annotations

import base64
import binascii
import math
import struct

from pydantic import BaseModel, ConfigDict, Field, field_validator

from facefleet.protocol.ids import Count, Epoch, Id
from facefleet.protocol.times import UnixTime

MAX_BATCH = 500
MAX_CROP_B64 = 90_000  # about 64 KB of JPEG
# A face embedding on the wire: 128 float32, little-endian, base64 (as in the gallery).
EMBEDDING_FLOATS = 128
EMBEDDING_B64_LENGTH = 4 * math.ceil(EMBEDDING_FLOATS * 4 / 3)


def check_embedding_b64(value: str) -> str:
    """``value`` when it is 128 finite little-endian float32 in base64; ValueError if not."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64") from exc
    if len(raw) != EMBEDDING_FLOATS * 4:
        raise ValueError(
            f"must hold {EMBEDDING_FLOATS} float32 ({EMBEDDING_FLOATS * 4} bytes), "
            f"not {len(raw)} bytes"
        )
    if not all(math.isfinite(x) for x in struct.unpack(f"<{EMBEDDING_FLOATS}f", raw)):
        raise ValueError("must hold finite numbers only")
    return value


class SightingIn(BaseModel):
    """One track of a face on a camera; posting the same track_id again updates it."""

    model_config = ConfigDict(extra="forbid")
    track_id: str = Field(
        min_length=1,
        max_length=64,
        description="Unique per camera and epoch; posting it again updates the sighting.",
    )
    person_id: Id | None = Field(description="None for a face that matched nobody.")
    first_seen: UnixTime = Field(description="Unix time, seconds.")
    last_seen: UnixTime = Field(description="Unix time, seconds.")
    best_distance: float | None = Field(default=None, ge=0)
    frames: Count = Field(ge=1)
    crop_jpeg_b64: str | None = Field(default=None, max_length=MAX_CROP_B64, repr=False)
    embedding_b64: str | None = Field(
        default=None,
        max_length=EMBEDDING_B64_LENGTH,
        repr=False,
        description=(
            "The track's face embedding: 128 float32, little-endian, base64 (the gallery's "
            "format). Unknown faces are clustered into strangers by it; without it the "
            "control plane embeds the crop itself."
        ),
    )
    embedding_model: str | None = Field(
        default=None,
        max_length=64,
        description="The model that made embedding_b64 (the gallery's model when omitted).",
    )

    @field_validator("embedding_b64")
    @classmethod
    def _embedding(cls, value: str | None) -> str | None:
        return None if value is None else check_embedding_b64(value)


class SightingBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: Id
    epoch: Epoch = Field(ge=1, description="The camera lease's fencing epoch.")
    sightings: list[SightingIn] = Field(min_length=1, max_length=MAX_BATCH)


class SightingBatchResult(BaseModel):
    model_config = ConfigDict(extra="ignore")
    accepted: int
    ids: list[int] = Field(default_factory=list)
