"""Home Assistant MQTT discovery: a "last person" sensor per camera and a presence binary
sensor per person, each a retained config under the discovery prefix. Entities become
unavailable when facefleet's availability topic says offline."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from facefleet import __version__
from facefleet.api.mqtt.messages import encode
from facefleet.api.mqtt.topics import Topics
from facefleet.api.storage.db import mqtt_repo

ORIGIN = {"name": "facefleet", "sw_version": __version__}


def digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def _common(topics: Topics, unique_id: str, state_topic: str) -> dict[str, Any]:
    return {
        "unique_id": unique_id,
        "state_topic": state_topic,
        "json_attributes_topic": state_topic,
        "availability_topic": topics.availability,
        "payload_available": "online",
        "payload_not_available": "offline",
        "origin": ORIGIN,
    }


def camera_sensor(
    topics: Topics, tenant_id: str, tenant: str, camera_id: int, camera: str
) -> dict[str, Any]:
    node = topics.node_id(tenant_id)
    return {
        "name": "Last person",
        **_common(
            topics,
            f"{node}_camera_{camera_id}_last_person",
            topics.camera_person(tenant, camera_id),
        ),
        "value_template": "{{ value_json.person_name if value_json.known else 'unknown' }}",
        "icon": "mdi:face-recognition",
        "device": {
            "identifiers": [f"{node}_camera_{camera_id}"],
            "name": camera,
            "manufacturer": "facefleet",
            "model": "camera",
            "suggested_area": camera,
        },
    }


def presence_sensor(
    topics: Topics, tenant_id: str, tenant: str, person_id: int, person: str, off_delay: int
) -> dict[str, Any]:
    node = topics.node_id(tenant_id)
    return {
        "name": person,
        **_common(
            topics, f"{node}_person_{person_id}_presence", topics.presence(tenant, person_id)
        ),
        "device_class": "presence",
        "value_template": "{{ value_json.state }}",
        "payload_on": "ON",
        "payload_off": "OFF",
        # Sightings only say "seen": the sensor turns itself off this long after the last one.
        "off_delay": off_delay,
        "device": {
            "identifiers": [f"{node}_people"],
            "name": f"facefleet {tenant} people",
            "manufacturer": "facefleet",
            "model": "face gallery",
        },
    }


async def configs(session: AsyncSession, topics: Topics, off_delay: int) -> dict[str, bytes]:
    """Config topic -> retained payload of every entity that should exist now."""
    out: dict[str, bytes] = {}
    for tenant_id, tenant, camera_id, camera in await mqtt_repo.cameras(session):
        out[topics.camera_config(tenant_id, camera_id)] = encode(
            camera_sensor(topics, tenant_id, tenant, camera_id, camera)
        )
    for tenant_id, tenant, person_id, person in await mqtt_repo.people(session):
        out[topics.presence_config(tenant_id, person_id)] = encode(
            presence_sensor(topics, tenant_id, tenant, person_id, person, off_delay)
        )
    return out
