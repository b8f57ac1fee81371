"""Two control-plane replicas (separate processes sharing PostgreSQL and Redis) and the
machine's Mosquitto: workers report sightings through both, through the SDK, and each event
is published once, by the leader, never once per replica."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facefleet.sdk import WorkerClient
from facefleet.sdk._models import Sighting
from tests.fixtures.fleet import ControlPlane
from tests.fixtures.mqtt import MqttRecorder, shared_broker_url, unique_prefix
from tests.fixtures.replica_set import add_cameras, keys_of, start_replicas
from tests.fixtures.services import (
    REDIS_URL,
    create_pg_database,
    create_redis_prefix,
    delete_redis_prefix,
    drop_pg_database,
)
from tests.fixtures.waiting import eventually

TRACKS = 6


@pytest.fixture
def database_url() -> Iterator[str]:
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = create_redis_prefix()
    yield prefix
    delete_redis_prefix(prefix)


def connected(plane: ControlPlane) -> bool:
    metrics = httpx.get(f"{plane.url}/metrics", timeout=5).text
    return "facefleet_mqtt_connected 1.0" in metrics


async def test_two_replicas_publish_each_event_once(
    tmp_path: Path, database_url: str, redis_prefix: str
) -> None:
    broker = shared_broker_url()
    prefix = unique_prefix()
    recorder = MqttRecorder(int(broker.rsplit(":", 1)[1]), [f"{prefix}/#"])
    env = {
        "FACEFLEET_MQTT_URL": broker,
        "FACEFLEET_MQTT_TOPIC_PREFIX": prefix,
        "FACEFLEET_MQTT_DISCOVERY": "false",
        "FACEFLEET_INTEGRATIONS_POLL_PERIOD": "0.1",
    }
    replicas = start_replicas(tmp_path, database_url, REDIS_URL, redis_prefix, env=env)
    try:
        keys = keys_of(tmp_path)
        async with httpx.AsyncClient(timeout=10) as http:
            await add_cameras(http, replicas[0].url, keys["admin"], 2)
        # The leader alone holds a broker connection.
        await eventually(
            lambda: _async(sum(connected(r) for r in replicas) == 1), 15, "one publisher"
        )
        assert sum(connected(r) for r in replicas) == 1

        async def report(plane: ControlPlane, worker_id: str) -> list[int]:
            async with WorkerClient(plane.url, keys["worker"], worker_id) as client:
                await client.register()
                assignment = (await client.request_camera()).assignment
                assert assignment is not None
                ids = []
                for n in range(TRACKS):
                    now = time.time()
                    accepted = await client.report_sightings(
                        assignment.camera_id,
                        assignment.epoch,
                        [
                            Sighting(
                                track_id=f"{worker_id}-{n}",
                                person_id=None,
                                first_seen=now - 1,
                                last_seen=now,
                                frames=3,
                            )
                        ],
                    )
                    ids += accepted.ids
                return ids

        produced = await asyncio.gather(report(replicas[0], "wa"), report(replicas[1], "wb"))
        expected = {i for ids in produced for i in ids}
        assert len(expected) == 2 * TRACKS
        topic = f"{prefix}/default/sightings"

        def arrived() -> bool:
            return {m.json()["id"] for m in recorder.on(topic)} >= expected

        await eventually(lambda: _async(arrived()), 15, "every sighting on the broker")
        await asyncio.sleep(1.5)  # long enough for a second replica's copies to show up
        messages = [m.json() for m in recorder.on(topic)]
        assert sorted(m["id"] for m in messages) == sorted(expected)
        assert len({m["event_id"] for m in messages}) == len(messages)
        statuses = {m.topic for m in recorder.on(f"{prefix}/default/workers/+/status")}
        assert statuses == {
            f"{prefix}/default/workers/wa/status",
            f"{prefix}/default/workers/wb/status",
        }
        # Worker status changes too (online, then suspect once they stop heartbeating),
        # each once.
        changes = [m.json() for m in recorder.on(f"{prefix}/default/workers/+/status")]
        assert len({c["event_id"] for c in changes}) == len(changes) >= 2
        assert {c["worker_id"] for c in changes if c["detail"] == "online"} == {"wa", "wb"}
        assert len([c for c in changes if c["detail"] == "online"]) == 2
    finally:
        recorder.close()
        for plane in replicas:
            plane.stop()
        for plane in replicas:
            assert "Traceback" not in plane.log(), plane.log()[-3000:]


async def _async(value: bool) -> bool:
    return value
