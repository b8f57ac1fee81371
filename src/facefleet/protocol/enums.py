"""Enumerations of the wire, and the open form in which a worker reads them.

A worker parses what a newer control plane sends without failing on a value it does not
know yet: fields it only reads are plain strings whose schema still lists the values.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import WithJsonSchema


class WorkerStatus(StrEnum):
    online = "online"
    suspect = "suspect"
    draining = "draining"
    stopping = "stopping"
    offline = "offline"
    deregistered = "deregistered"


LIVE_STATUSES = frozenset(
    {WorkerStatus.online, WorkerStatus.suspect, WorkerStatus.draining, WorkerStatus.stopping}
)

DesiredState = Literal["run", "drain", "stop"]
StopMode = Literal["graceful", "immediate"]


def _listed(*values: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(values)})


StatusText = Annotated[str, _listed(*(s.value for s in WorkerStatus))]
DesiredText = Annotated[str, _listed("run", "drain", "stop")]
StopModeText = Annotated[str, _listed("graceful", "immediate")]
