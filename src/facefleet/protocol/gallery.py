"""The gallery as workers load it: embeddings only, never photos.

Fields added after the first version have defaults, so a worker reading an older control
plane's gallery gets the same rule, and an older worker ignores what it does not know.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# The ratio test of the matching rule (facefleet.face.gallery): the nearest person must be
# at most this fraction of the distance to any competitor.
DEFAULT_MATCH_RATIO = 0.8


class GalleryOut(BaseModel):
    """Everything a worker needs to match faces (``facefleet.face.gallery.from_wire``)."""

    model_config = ConfigDict(extra="ignore")

    version: int
    model: str
    threshold: float = Field(description="The tenant's default; a camera may override it.")
    dim: int
    person_ids: list[int] = Field(description="The person of each embedding row.")
    people: dict[str, str] = Field(description="Person id -> name.")
    embeddings_b64: str = Field(
        description="Row-major float32 little-endian matrix, base64.", repr=False
    )
    ratio: float = Field(
        default=DEFAULT_MATCH_RATIO,
        gt=0,
        le=1,
        description=(
            "A match's distance must be at most this fraction of the distance to the "
            "second-nearest person and to the person's negative examples (1: no margin)."
        ),
    )
    person_thresholds: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Person id -> their own threshold (people with several faces); a match needs "
            "the distance within both it and the camera's threshold."
        ),
    )
    negative_person_ids: list[int] = Field(
        default_factory=list,
        description="The person each negative example is not (one per negative row).",
    )
    negatives_b64: str = Field(
        default="",
        description="Negative examples: float32 little-endian matrix, base64.",
        repr=False,
    )
