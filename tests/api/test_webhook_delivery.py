"""Webhook deliveries to a real HTTP receiver: signed, retried with backoff, dead letters,
a test call, and durable across a control-plane restart."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from facefleet.api.webhooks import signing
from tests.conftest import Backend
from tests.fixtures.harness import Api, FakeClock, Tenant, make_settings, running_api
from tests.fixtures.sightings import Reporter
from tests.fixtures.waiting import eventually, until
from tests.fixtures.webhook_receiver import Receiver, webhook_receiver

FAST = {
    "run_background": True,
    "integrations_poll_period": 0.05,
    "webhook_retry_base": 0.2,
    "webhook_retry_max": 1.0,
    "webhook_max_attempts": 3,
    "webhook_timeout": 5.0,
}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


@pytest.fixture
async def live(tmp_path: Path, clock: FakeClock) -> AsyncIterator[Api]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}"
    async with running_api(make_settings(tmp_path, url, **FAST), clock) as running:
        yield running


async def subscribe(api: Api, tenant: Tenant, url: str, types: list[str]) -> dict[str, Any]:
    resp = await api.client.post(
        "/v1/webhooks", json={"url": url, "event_types": types}, headers=tenant.headers()
    )
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


def documented_verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The receiver's check as docs/integrations.md shows it, written out independently."""
    fields = dict(part.split("=", 1) for part in header.split(","))
    timestamp = int(fields["t"])
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


async def deliveries(api: Api, tenant: Tenant, hook: int, path: str = "deliveries") -> Any:
    resp = await api.client.get(f"/v1/webhooks/{hook}/{path}", headers=tenant.headers())
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_a_delivery_is_signed_and_a_500_is_retried(live: Api, receiver: Receiver) -> None:
    tenant = await live.tenant()
    hook = await subscribe(live, tenant, receiver.url, ["sighting"])
    secret = hook["secret"]
    receiver.answer(500, then=200)
    reporter = await Reporter.start(live, tenant)
    ada = await reporter.person("Ada")
    sighting_id = await reporter.see(ada)

    await until(lambda: len(receiver.received()) >= 2, 10, "a failed delivery and its retry")
    first, second = receiver.received()[:2]
    assert (first.answered, second.answered) == (500, 200)
    assert second.at - first.at >= 0.15  # backoff, not a hot loop
    for request in (first, second):
        header = request.headers["x-facefleet-signature"]
        assert signing.verify(secret, header, request.body, now=time.time())
        assert documented_verify(secret, header, request.body)
        # Signed with another secret, or a body changed in transit: refused.
        assert not documented_verify(signing.new_secret(), header, request.body)
        assert not documented_verify(secret, header, request.body.replace(b"Ada", b"Eve"))
        assert request.headers["content-type"] == "application/json"
        assert request.headers["x-facefleet-event"] == "sighting"
    assert first.body == second.body  # the same delivery, the same bytes
    assert [r.headers["x-facefleet-attempt"] for r in (first, second)] == ["1", "2"]
    body = json.loads(second.body)
    assert body["type"] == "sighting" and body["id"] == second.headers["x-facefleet-event-id"]
    assert body["tenant"] == {"id": tenant.id, "name": tenant.name}
    data = body["data"]
    assert (data["id"], data["person_id"], data["person_name"], data["known"]) == (
        sighting_id,
        ada,
        "Ada",
        True,
    )
    assert data["camera_name"] == "front-door-000" and data["camera_id"] == reporter.camera_id
    datetime.fromisoformat(body["occurred_at"])
    datetime.fromisoformat(data["first_seen"])

    async def recorded() -> Any:
        log = await deliveries(live, tenant, hook["id"])
        return log if log["items"][0]["status"] == "delivered" else None

    log = await eventually(recorded, 10, "the outcome to be recorded")
    assert log["total"] == 1
    (item,) = log["items"]
    assert item["status"] == "delivered" and item["attempts"] == 2
    assert [a["status_code"] for a in item["log"]] == [500, 200]
    assert item["log"][0]["error"] == "HTTP 500"
    assert item["log"][0]["response_excerpt"] == "receiver says no"
    assert item["payload"] == body
    # Only sightings were subscribed: the worker's registration was not delivered.
    assert {json.loads(r.body)["type"] for r in receiver.received()} == {"sighting"}


async def test_repeated_failures_land_in_the_dead_letters(live: Api, receiver: Receiver) -> None:
    tenant = await live.tenant()
    hook = await subscribe(live, tenant, receiver.url, ["sighting"])
    receiver.answer(then=500)
    reporter = await Reporter.start(live, tenant)
    await reporter.see(None)

    async def dead() -> list[Any]:
        items: list[Any] = (await deliveries(live, tenant, hook["id"], "dead-letters"))["items"]
        return items

    (letter,) = await eventually(dead, 15, "a dead letter")
    assert letter["attempts"] == 3 and letter["status"] == "dead"
    assert [a["status_code"] for a in letter["log"]] == [500, 500, 500]
    assert len(receiver.received()) == 3
    times = [datetime.fromisoformat(a["attempted_at"]).timestamp() for a in letter["log"]]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.15 and gaps[1] > gaps[0] * 1.2, gaps  # the wait doubles
    listed = (await live.client.get("/v1/webhooks", headers=tenant.headers())).json()["items"]
    assert listed[0]["deliveries"] == {"pending": 0, "delivered": 0, "dead": 1}

    # A dead letter is sent again on request, with a full set of attempts.
    receiver.answer(then=200)
    again = await live.client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{letter['id']}/retry", headers=tenant.headers()
    )
    assert again.status_code == 200 and again.json()["status"] == "pending"
    await until(lambda: len(receiver.received()) == 4, 10, "the dead letter sent again")

    async def delivered() -> Any:
        item = (await deliveries(live, tenant, hook["id"]))["items"][0]
        return item if item["status"] == "delivered" else None

    assert (await eventually(delivered, 10, "the outcome to be recorded"))["attempts"] == 1
    assert (await dead()) == []
    twice = await live.client.post(
        f"/v1/webhooks/{hook['id']}/deliveries/{letter['id']}/retry", headers=tenant.headers()
    )
    assert twice.status_code == 409 and "delivered" in twice.json()["detail"]


async def test_the_test_call_sends_a_signed_ping_and_reports_the_answer(
    live: Api, receiver: Receiver
) -> None:
    tenant = await live.tenant()
    hook = await subscribe(live, tenant, receiver.url, ["*"])
    resp = await live.client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers())
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["delivered"] is True
    assert result["delivery"]["log"][0]["status_code"] == 200
    (ping,) = receiver.received()
    assert json.loads(ping.body)["type"] == "ping"
    assert documented_verify(hook["secret"], ping.headers["x-facefleet-signature"], ping.body)

    # A failing receiver: the answer is reported, and the ping is retried like any delivery.
    receiver.answer(502, then=200)
    failed = (
        await live.client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers())
    ).json()
    assert failed["delivered"] is False
    assert failed["delivery"]["status"] == "pending"
    assert failed["delivery"]["log"][0]["status_code"] == 502
    await until(lambda: len(receiver.received()) == 3, 10, "the failed ping retried")
    missing = await live.client.post("/v1/webhooks/999/test", headers=tenant.headers())
    assert missing.status_code == 404 and missing.json()["error"] == "WebhookNotFound"


async def test_the_secret_is_shown_once_and_never_logged(
    live: Api, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    # Everything facefleet and its HTTP client log, down to DEBUG. (A database driver's own
    # DEBUG log prints every SQL parameter of every table; that level is not for production.)
    caplog.set_level(logging.INFO)
    for name in ("facefleet", "httpx", "httpcore", "uvicorn"):
        caplog.set_level(logging.DEBUG, logger=name)
    tenant = await live.tenant()
    receiver.answer(500, then=200)
    hook = await subscribe(live, tenant, receiver.url, ["sighting", "registered"])
    secret = hook["secret"]
    assert secret.startswith("whsec_") and len(secret) > 40
    reporter = await Reporter.start(live, tenant)
    await reporter.see(None)
    await until(lambda: len(receiver.received()) >= 3, 10, "deliveries and a retry")
    await live.client.post(f"/v1/webhooks/{hook['id']}/test", headers=tenant.headers())
    reads = [
        await live.client.get("/v1/webhooks", headers=tenant.headers()),
        await live.client.get(f"/v1/webhooks/{hook['id']}", headers=tenant.headers()),
        await live.client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=tenant.headers()),
        await live.client.patch(
            f"/v1/webhooks/{hook['id']}", json={"description": "hall"}, headers=tenant.headers()
        ),
    ]
    for resp in reads:
        assert resp.status_code == 200, resp.text
        assert secret not in resp.text and "secret" not in resp.json()
    assert secret not in caplog.text
    assert secret not in "".join(r.headers["x-facefleet-signature"] for r in receiver.received())


async def test_deliveries_survive_a_control_plane_restart(
    backend: Backend, tmp_path: Path, clock: FakeClock, receiver: Receiver
) -> None:
    settings = make_settings(tmp_path, backend.database_url, **backend.hot_settings, **FAST)
    receiver.answer(then=503)
    async with running_api(settings.model_copy(update={"webhook_max_attempts": 50}), clock) as api:
        tenant = await api.tenant()
        hook = await subscribe(api, tenant, receiver.url, ["sighting"])
        reporter = await Reporter.start(api, tenant)
        sighting_id = await reporter.see(None)
        await until(lambda: len(receiver.received()) >= 1, 10, "a first, failed attempt")
    failed = len(receiver.received())
    receiver.answer(then=200)
    async with running_api(settings, clock) as api:
        await until(
            lambda: any(r.answered == 200 for r in receiver.received()),
            10,
            "the delivery after the restart",
        )

        async def recorded() -> Any:
            log = await deliveries(api, tenant, hook["id"])
            return log if log["items"][0]["status"] == "delivered" else None

        log = await eventually(recorded, 10, "the outcome to be recorded")
    ok = [r for r in receiver.received() if r.answered == 200]
    assert len(ok) == 1 and json.loads(ok[0].body)["data"]["id"] == sighting_id
    (item,) = log["items"]
    codes = [a["status_code"] for a in item["log"]]
    # An attempt cut short by the stop may have reached the receiver without being recorded.
    assert item["status"] == "delivered" and codes == [503] * (len(codes) - 1) + [200]
    assert failed <= len(codes) <= failed + 1
