"""The MQTT messages one outbox event becomes.

The rule that keeps an old recognition from acting as a new one (after an outage, Double
Take once re-sent one and a door was unlocked):
- every message carries the event's id (QoS 1 may deliver twice: de-duplicate on it), the
  time it happened and ``late``: true when it is published more than ``late_after`` seconds
  after it happened;
- a late sighting goes to the sightings topic only: it never changes a camera's retained
  last person nor turns a presence sensor on;
- a retained state topic is never given a state older than the one it holds (the caller
  checks ``state_at`` against what it last published there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from facefleet.api.integrations.catalog import SIGHTING, WORKER_KINDS, worker_status
from facefleet.api.integrations.payloads import iso
from facefleet.api.mqtt.topics import Topics
from facefleet.api.storage.db.models import OutboxEvent


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    # For a retained state: when that state began; an older one never replaces it.
    state_at: datetime | None = None
    # The metrics' label: which kind of topic.
    label: str = ""


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def messages_for(
    event: OutboxEvent, tenant: str, topics: Topics, *, now: float, late_after: float
) -> list[Message]:
    late = now - event.occurred_at.timestamp() > late_after
    stamp = {"event_id": event.event_id, "occurred_at": iso(event.occurred_at), "late": late}
    data = event.data
    if event.kind == SIGHTING:
        out = [
            Message(
                topics.sightings(tenant),
                encode({**data, "tenant": tenant, **stamp}),
                retain=False,
                label="sightings",
            )
        ]
        if late:
            return out
        seen = {
            "sighting_id": data["id"],
            "person_id": data["person_id"],
            "person_name": data["person_name"],
            "known": data["known"],
            "camera_id": data["camera_id"],
            "camera_name": data["camera_name"],
            "seen_at": data["last_seen"],
            "crop_url": data["crop_url"],
            **stamp,
        }
        out.append(
            Message(
                topics.camera_person(tenant, int(data["camera_id"])),
                encode(seen),
                retain=True,
                state_at=datetime.fromisoformat(data["last_seen"]),
                label="camera_person",
            )
        )
        if data["person_id"] is not None:
            out.append(
                Message(
                    topics.presence(tenant, int(data["person_id"])),
                    encode({"state": "ON", **seen}),
                    retain=False,
                    label="presence",
                )
            )
        return out
    if event.kind in WORKER_KINDS:
        status = worker_status(event.kind, data)
        if status is None:
            return []
        public, detail = status
        worker_id = str(data["worker_id"])
        body = {"status": public, "detail": detail, "worker_id": worker_id, **stamp}
        return [
            Message(
                topics.worker_status(tenant, worker_id),
                encode(body),
                retain=True,
                state_at=event.occurred_at,
                label="worker_status",
            )
        ]
    return []
