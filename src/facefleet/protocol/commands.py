"""Commands an operator sends to a worker, delivered in heartbeat responses."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from facefleet.protocol.json_values import JsonObject


class CommandType(StrEnum):
    reload_gallery = "reload_gallery"
    restart_stream = "restart_stream"
    set_config = "set_config"
    release_camera = "release_camera"
    snapshot = "snapshot"


CommandTypeText = Annotated[
    str, WithJsonSchema({"type": "string", "enum": [t.value for t in CommandType]})
]
AckStatus = Literal["acked", "failed"]


class CommandDelivery(BaseModel):
    """A command as the worker receives it: execute it, then acknowledge it."""

    model_config = ConfigDict(extra="ignore")

    id: int
    type: CommandTypeText
    payload: dict[str, Any] = Field(default_factory=dict)
    expires_at: float | None = Field(
        default=None, description="Unix time after which it is no longer executed."
    )


class CommandAck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: AckStatus = "acked"
    result: JsonObject = Field(default_factory=dict)
