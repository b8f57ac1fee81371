"""Webhook endpoint, delivery and delivery-log bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from facefleet.api.integrations.catalog import ALL, EVENT_TYPES

DeliveryStatus = Literal["pending", "delivered", "dead"]
MAX_URL = 2048


def check_url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the URL must be an http:// or https:// address with a host")
    if parts.username or parts.password:
        raise ValueError(
            "put no credentials in the URL: it is shown to every reader of the tenant, and the "
            "signature header authenticates each delivery"
        )
    if parts.fragment:
        raise ValueError("the URL must not have a #fragment")
    parts.port  # noqa: B018  (raises ValueError for a port out of range)
    return value


def check_event_types(values: list[str]) -> list[str]:
    unknown = sorted({v for v in values if v != ALL and v not in EVENT_TYPES})
    if unknown:
        raise ValueError(
            f"unknown event types {unknown}; known: {sorted(EVENT_TYPES)} or '*' for all"
        )
    return sorted(set(values))


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=MAX_URL, description="Where deliveries are POSTed.")
    event_types: list[str] = Field(
        min_length=1, description="Event types to deliver ('*' for all, including future ones)."
    )
    description: str = Field(default="", max_length=200)
    enabled: bool = True

    _url = field_validator("url")(check_url)
    _types = field_validator("event_types")(check_event_types)


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=MAX_URL)
    event_types: list[str] | None = Field(default=None, min_length=1)
    description: str | None = Field(default=None, max_length=200)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_url(value)

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else check_event_types(value)


class DeliveryCounts(BaseModel):
    pending: int = 0
    delivered: int = 0
    dead: int = 0


class WebhookOut(BaseModel):
    id: int
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    deliveries: DeliveryCounts


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="Signs every delivery (X-Facefleet-Signature). Shown only in this response."
    )


class WebhookList(BaseModel):
    items: list[WebhookOut]


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: float
    response_excerpt: str


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    occurred_at: datetime
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    payload: dict[str, Any] = Field(description="The JSON body every attempt POSTs.")
    log: list[AttemptOut]


class DeliveryPage(BaseModel):
    items: list[DeliveryDetail]
    total: int
    offset: int
    limit: int


class TestDelivery(BaseModel):
    delivered: bool
    delivery: DeliveryDetail


class EventTypes(BaseModel):
    types: dict[str, str]
