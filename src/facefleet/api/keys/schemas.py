"""API key bodies. The key itself appears once: in the answer that created it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from facefleet.api.security import Role
from facefleet.protocol.times import Instant

# The longest life a key can be given: ten years.
MAX_TTL_SECONDS = 10 * 365 * 86_400
# The longest an old key keeps working after a rotation.
MAX_OVERLAP_SECONDS = 86_400

KeyStatus = Literal["active", "expired", "revoked"]


class _Expiry(BaseModel):
    expires_at: Instant | None = Field(
        default=None, description="When the key stops working (without a time zone: UTC)."
    )
    ttl_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TTL_SECONDS,
        description="Seconds from now until the key stops working (instead of expires_at).",
    )

    @model_validator(mode="after")
    def _one_expiry(self) -> _Expiry:
        if self.expires_at is not None and self.ttl_seconds is not None:
            raise ValueError("give expires_at or ttl_seconds, not both")
        return self


class KeyCreate(_Expiry):
    """Without an expiry the key works until it is revoked."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    name: str = Field(
        default="",
        max_length=128,
        description="What the key is for (shown in the list); the role's name when empty.",
    )


class KeyRotate(_Expiry):
    """The new key has the old one's role and name; its expiry is the one given here."""

    model_config = ConfigDict(extra="forbid")
    overlap_seconds: float = Field(
        default=0,
        ge=0,
        le=MAX_OVERLAP_SECONDS,
        description=(
            "Seconds the old key keeps working, to roll the new one out (0: revoked at once)."
        ),
    )


class KeyOut(BaseModel):
    id: int
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    role: Role
    name: str
    status: KeyStatus
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="When a request last used the key, to about a minute and a half."
    )


class KeyCreated(KeyOut):
    key: str = Field(description="The API key. Shown only in this answer: store it now.")


class KeyRotated(BaseModel):
    old: KeyOut = Field(description="The rotated key: revoked, or expiring after the overlap.")
    new: KeyCreated


class KeyList(BaseModel):
    items: list[KeyOut]
