"""MQTT against a real Mosquitto: the documented topics and payloads, Home Assistant
discovery, retained state that never goes back in time, and a broker restart mid-run that
loses nothing and re-publishes nothing as new. Each test has topic prefixes of its own."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import paho.mqtt.publish as paho_publish
import pytest
from sqlalchemy import select

from facefleet.api.storage.db.models import OutboxEvent
from tests.fixtures.harness import Api, FakeClock, make_settings, running_api
from tests.fixtures.mqtt import (
    MqttRecorder,
    PrivateMosquitto,
    Received,
    retained,
    shared_broker_url,
    unique_prefix,
)
from tests.fixtures.sightings import Reporter
from tests.fixtures.waiting import eventually

SIGHTING_FIELDS = {
    "id",
    "person_id",
    "person_name",
    "known",
    "camera_id",
    "camera_name",
    "first_seen",
    "last_seen",
    "best_distance",
    "frames",
    "track_id",
    "worker_id",
    "crop_url",
    "tenant",
    "event_id",
    "occurred_at",
    "late",
}


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class Broker:
    """One broker as a test sees it: its URL, the test's prefixes, a recorder of both."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.port = port_of(url)
        self.prefix = unique_prefix()
        self.discovery = f"{self.prefix}-ha"
        self.recorder: MqttRecorder | None = None

    def settings(self, **more: Any) -> dict[str, Any]:
        return {
            "run_background": True,
            "mqtt_url": self.url,
            "mqtt_topic_prefix": self.prefix,
            "mqtt_discovery_prefix": self.discovery,
            "integrations_poll_period": 0.05,
            "mqtt_discovery_refresh": 0.2,
            **more,
        }

    def record(self, *, persistent: bool = False) -> MqttRecorder:
        self.recorder = MqttRecorder(
            self.port, [f"{self.prefix}/#", f"{self.discovery}/#"], persistent=persistent
        )
        return self.recorder

    def clear_retained(self) -> None:
        """Leave nothing retained on a shared broker."""
        if self.recorder is None:
            return
        topics = {m.topic for m in self.recorder.messages}
        self.recorder.close()
        if topics:
            paho_publish.multiple(
                [(t, b"", 1, True) for t in topics], hostname="127.0.0.1", port=self.port
            )


@pytest.fixture
def shared() -> Iterator[Broker]:
    broker = Broker(shared_broker_url())
    yield broker
    broker.clear_retained()


async def until_messages(
    recorder: MqttRecorder, topic: str, count: int, within: float = 10
) -> list[Received]:
    async def enough() -> list[Received] | None:
        found = recorder.on(topic)
        return found if len(found) >= count else None

    return await eventually(enough, within, f"{count} messages on {topic}")


def jpeg() -> str:
    _, data = cv2.imencode(".jpg", np.zeros((24, 24, 3), np.uint8))
    return base64.b64encode(data.tobytes()).decode()


async def test_sightings_status_and_discovery_reach_the_broker(
    shared: Broker, tmp_path: Path, clock: FakeClock
) -> None:
    recorder = shared.record()
    url = f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}"
    settings = make_settings(
        tmp_path, url, public_url="https://faces.example.com", **shared.settings()
    )
    async with running_api(settings, clock) as api:
        tenant = await api.tenant()
        reporter = await Reporter.start(api, tenant)
        ada = await reporter.person("Ada")
        seen_at = time.time() - 2
        ada_sighting = await reporter.see(ada, at=seen_at, crop_jpeg_b64=jpeg())
        stranger = await reporter.see(None, at=seen_at + 1)

        p = f"{shared.prefix}/{tenant.name}"
        first, second = await until_messages(recorder, f"{p}/sightings", 2)
        for message in (first, second):
            assert message.qos == 1 and not message.retain
            assert set(message.json()) == SIGHTING_FIELDS
        body = first.json()
        assert body["id"] == ada_sighting and body["tenant"] == tenant.name
        assert (body["person_id"], body["person_name"], body["known"]) == (ada, "Ada", True)
        assert body["camera_id"] == reporter.camera_id
        assert body["camera_name"] == "front-door-000"
        assert body["crop_url"] == f"https://faces.example.com/v1/sightings/{ada_sighting}/crop"
        assert body["best_distance"] == 0.41 and body["worker_id"] == "w1"
        assert body["first_seen"].endswith("Z") and body["late"] is False
        other = second.json()
        assert (other["id"], other["person_name"], other["known"]) == (stranger, None, False)
        assert other["crop_url"] is None
        assert body["event_id"] != other["event_id"]

        # The camera's retained last person: the stranger, seen last.
        camera = f"{p}/cameras/{reporter.camera_id}/person"
        held = retained(shared.port, camera)
        assert held is not None
        assert held.json()["sighting_id"] == stranger and held.json()["known"] is False
        # Ada's presence sensor was switched on, not retained.
        (presence,) = await until_messages(recorder, f"{p}/people/{ada}/presence", 1)
        assert presence.json()["state"] == "ON" and not presence.retain
        status = retained(shared.port, f"{p}/workers/w1/status")
        assert status is not None and status.json()["status"] == "online"
        availability = retained(shared.port, f"{shared.prefix}/availability")
        assert availability is not None and availability.payload == b"online"

        # Home Assistant discovery: a sensor per camera, a presence sensor per person.
        node = f"{shared.prefix}_{tenant.id}"
        camera_config = (
            f"{shared.discovery}/sensor/{node}/camera_{reporter.camera_id}_last_person/config"
        )
        (config,) = await until_messages(recorder, camera_config, 1)
        sensor = config.json()
        assert sensor["state_topic"] == camera
        assert sensor["availability_topic"] == f"{shared.prefix}/availability"
        assert sensor["device"]["name"] == "front-door-000"
        person_config = f"{shared.discovery}/binary_sensor/{node}/person_{ada}_presence/config"
        (config,) = await until_messages(recorder, person_config, 1)
        binary = config.json()
        assert binary["name"] == "Ada" and binary["device_class"] == "presence"
        assert binary["state_topic"] == f"{p}/people/{ada}/presence"
        assert binary["off_delay"] == settings.mqtt_presence_seconds
        assert config.retain is False and retained(shared.port, person_config) is not None

        # A person enrolled later gets a config; one removed gets an empty one (HA drops it).
        bob = await reporter.person("Bob")
        bob_config = f"{shared.discovery}/binary_sensor/{node}/person_{bob}_presence/config"
        await until_messages(recorder, bob_config, 1)
        deleted = await api.client.delete(f"/v1/people/{bob}", headers=tenant.headers())
        assert deleted.status_code == 204, deleted.text
        configs = await until_messages(recorder, bob_config, 2)
        assert configs[-1].payload == b""
    # A clean stop says offline.
    availability = retained(shared.port, f"{shared.prefix}/availability")
    assert availability is not None and availability.payload == b"offline"


async def test_a_retained_state_never_goes_back_in_time(
    shared: Broker, tmp_path: Path, clock: FakeClock
) -> None:
    recorder = shared.record()
    url = f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}"
    settings = make_settings(tmp_path, url, **shared.settings())
    now = time.time()
    async with running_api(settings, clock) as api:
        tenant = await api.tenant()
        reporter = await Reporter.start(api, tenant)
        ada = await reporter.person("Ada")
        await reporter.see(ada, at=now - 3)
    async with running_api(settings, clock) as api:
        # Reported after Ada but seen before her (a slow worker): on the sightings topic,
        # never as the camera's last person, even after a restart.
        reporter.api = reporter.worker.api = api
        bob = await reporter.person("Bob")
        older = await reporter.see(bob, at=now - 60)
        p = f"{shared.prefix}/{tenant.name}"
        messages = await until_messages(recorder, f"{p}/sightings", 2)
        assert messages[-1].json()["id"] == older
        held = retained(shared.port, f"{p}/cameras/{reporter.camera_id}/person")
        assert held is not None and held.json()["person_name"] == "Ada"


@pytest.fixture
def private(tmp_path: Path) -> Iterator[Broker]:
    mosquitto = PrivateMosquitto(tmp_path / "mosquitto")
    mosquitto.start()
    broker = Broker(mosquitto.url)
    broker.mosquitto = mosquitto  # type: ignore[attr-defined]
    try:
        yield broker
    finally:
        if broker.recorder is not None:
            broker.recorder.close()
        mosquitto.stop()


@pytest.fixture
async def outage_api(private: Broker, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Api]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}"
    settings = make_settings(tmp_path, url, **private.settings(mqtt_late_after=1.0))
    async with running_api(settings, clock) as api:
        yield api


async def test_a_broker_restart_loses_nothing_and_republishes_nothing_as_new(
    private: Broker, outage_api: Api
) -> None:
    api = outage_api
    mosquitto: PrivateMosquitto = private.mosquitto  # type: ignore[attr-defined]
    recorder = private.record(persistent=True)
    tenant = await api.tenant()
    reporter = await Reporter.start(api, tenant)
    ada, bob = await reporter.person("Ada"), await reporter.person("Bob")
    p = f"{private.prefix}/{tenant.name}"
    camera = f"{p}/cameras/{reporter.camera_id}/person"
    before = await reporter.see(ada)
    (live,) = await until_messages(recorder, f"{p}/sightings", 1)
    assert live.json()["late"] is False

    mosquitto.stop()
    during_started = time.time()
    during = [await reporter.see(bob), await reporter.see(None)]
    during_ended = time.time()
    await eventually(_sleep(1.5), 3, "the outage to make the events late")
    mosquitto.start()

    messages = await until_messages(recorder, f"{p}/sightings", 3, within=20)
    by_sighting = {m.json()["id"]: m.json() for m in messages}
    assert set(by_sighting) == {before, *during}
    for sighting_id in during:
        late = by_sighting[sighting_id]
        assert late["late"] is True
        happened = _unix(late["occurred_at"])
        assert during_started - 0.5 <= happened <= during_ended + 0.5
    # The late sightings never became the camera's last person, nor Bob's presence.
    held = retained(private.port, camera)
    assert held is not None and held.json()["sighting_id"] == before
    assert recorder.on(f"{p}/people/{bob}/presence") == []

    # A sighting after the reconnect is live again and updates the camera.
    after = await reporter.see(bob)
    messages = await until_messages(recorder, f"{p}/sightings", 4)
    assert messages[-1].json()["id"] == after and messages[-1].json()["late"] is False
    await until_messages(recorder, f"{p}/people/{bob}/presence", 1)

    async def camera_updated() -> bool:
        held = retained(private.port, camera)
        return held is not None and held.json()["sighting_id"] == after

    await eventually(camera_updated, 10, "the camera's last person after the reconnect")
    # Nothing lost, nothing twice: every recorded event once, and the outbox is drained.
    async with api.state.sessions() as session:
        recorded = list(
            await session.scalars(select(OutboxEvent).where(OutboxEvent.kind == "sighting"))
        )
    assert not [e for e in recorded if e.mqtt_due]
    event_ids = [m.json()["event_id"] for m in recorder.on(f"{p}/sightings")]
    assert sorted(event_ids) == sorted(e.event_id for e in recorded)
    assert len(set(event_ids)) == len(event_ids) == 4
    availability = retained(private.port, f"{private.prefix}/availability")
    assert availability is not None and availability.payload == b"online"


def _sleep(seconds: float) -> Any:
    deadline = time.monotonic() + seconds

    async def passed() -> bool:
        return time.monotonic() >= deadline

    return passed


def _unix(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value).timestamp()
