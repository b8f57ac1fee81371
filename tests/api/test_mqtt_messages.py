"""The messages one outbox event becomes: a late sighting goes to the sightings topic only,
marked late; worker status maps to online / draining / offline; signatures expire."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from facefleet.api.integrations.payloads import iso
from facefleet.api.mqtt.messages import messages_for
from facefleet.api.mqtt.topics import Topics
from facefleet.api.storage.db.models import OutboxEvent
from facefleet.api.webhooks import signing

TOPICS = Topics("ff", "homeassistant")


def sighting_event(occurred: float, person_id: int | None = 7) -> OutboxEvent:
    return OutboxEvent(
        event_id="e-1",
        tenant_id="t",
        kind="sighting",
        occurred_at=datetime.fromtimestamp(occurred, UTC),
        data={
            "id": 3,
            "person_id": person_id,
            "person_name": "Ada" if person_id else None,
            "known": person_id is not None,
            "camera_id": 2,
            "camera_name": "door",
            "first_seen": iso(occurred - 3),
            "last_seen": iso(occurred - 1),
            "best_distance": 0.4,
            "frames": 5,
            "track_id": "x",
            "worker_id": "w",
            "crop_url": None,
        },
    )


def test_a_live_sighting_updates_the_camera_and_presence() -> None:
    now = time.time()
    out = messages_for(sighting_event(now - 1), "home", TOPICS, now=now, late_after=10)
    assert [(m.topic, m.retain) for m in out] == [
        ("ff/home/sightings", False),
        ("ff/home/cameras/2/person", True),
        ("ff/home/people/7/presence", False),
    ]
    assert all(json.loads(m.payload)["late"] is False for m in out)
    assert out[1].state_at == datetime.fromtimestamp(now - 2, UTC)
    assert json.loads(out[2].payload)["state"] == "ON"
    unknown = messages_for(sighting_event(now, None), "home", TOPICS, now=now, late_after=10)
    assert [m.topic for m in unknown] == ["ff/home/sightings", "ff/home/cameras/2/person"]


def test_a_late_sighting_changes_no_state() -> None:
    now = time.time()
    (only,) = messages_for(sighting_event(now - 30), "home", TOPICS, now=now, late_after=10)
    body = json.loads(only.payload)
    assert only.topic == "ff/home/sightings"
    assert body["late"] is True and body["event_id"] == "e-1"
    assert abs(datetime.fromisoformat(body["occurred_at"]).timestamp() - (now - 30)) < 1e-3


def test_worker_status_topics() -> None:
    now = time.time()
    cases = [
        ("registered", {"worker_id": "w"}, "online"),
        ("status_changed", {"worker_id": "w", "to": "suspect"}, "online"),
        ("status_changed", {"worker_id": "w", "to": "draining"}, "draining"),
        ("shutdown_signalled", {"worker_id": "w"}, "draining"),
        ("status_changed", {"worker_id": "w", "to": "offline"}, "offline"),
        ("deregistered", {"worker_id": "w"}, "offline"),
    ]
    for kind, data, expected in cases:
        event = OutboxEvent(
            event_id="e",
            tenant_id="t",
            kind=kind,
            data=data,
            occurred_at=datetime.fromtimestamp(now - 60, UTC),
        )
        (message,) = messages_for(event, "home", TOPICS, now=now, late_after=10)
        body = json.loads(message.payload)
        assert (message.topic, message.retain) == ("ff/home/workers/w/status", True)
        # A status stays true until the next one: sent even when late, marked so.
        assert (body["status"], body["late"]) == (expected, True), kind
        assert message.state_at == event.occurred_at


def test_a_signature_is_bound_to_its_secret_body_and_time() -> None:
    secret = signing.new_secret()
    now = time.time()
    header = signing.sign(secret, int(now), b'{"a":1}')
    assert signing.verify(secret, header, b'{"a":1}', now=now)
    assert not signing.verify(secret, header, b'{"a":2}', now=now)
    assert not signing.verify(signing.new_secret(), header, b'{"a":1}', now=now)
    assert not signing.verify(secret, header, b'{"a":1}', now=now + 301)  # replayed later
    assert not signing.verify(secret, "v1=deadbeef", b'{"a":1}', now=now)
