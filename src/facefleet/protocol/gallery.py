"""The gallery as workers load it: embeddings only, never photos."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class GalleryOut(BaseModel):
    """Everything a worker needs to match faces."""

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
