"""No key reaches the control plane's log, even from a client that puts it in a URL: the
real `facefleet serve` process, its whole log read back."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from facefleet.api.log_redaction import RedactSecrets
from tests.fixtures.fleet import ControlPlane
from tests.fixtures.waiting import wait_for


@pytest.fixture
def control(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}")
    plane.start()
    yield plane
    plane.stop()


def test_keys_in_query_strings_never_reach_the_access_log(control: ControlPlane) -> None:
    keys = control.keys()
    tenant = httpx.get(
        f"{control.url}/v1/whoami", headers={"Authorization": f"Bearer {keys['viewer']}"}
    ).json()["tenant_id"]
    with control.admin() as admin:
        query = {"token": keys["admin"], "api_key": keys["worker"], "limit": "5"}
        assert admin.get("/v1/workers", params=query).status_code == 200
        assert admin.get("/v1/cameras;password=" + keys["viewer"]).status_code == 404
    url = f"ws://127.0.0.1:{control.port}/v1/workers/ws/{tenant}?token={keys['admin']}"
    with pytest.raises(InvalidStatus) as refused, connect(url):
        pass
    assert refused.value.response.status_code == 403
    # The lines are there, with their parameters masked.
    wait_for(lambda: "WebSocket /v1/workers/ws/" in control.log(), 10, "the WebSocket line")
    log = control.log()
    assert "GET /v1/workers?token=***&api_key=***&limit=5" in log
    assert f"WebSocket /v1/workers/ws/{tenant}?token=***" in log
    assert "GET /v1/cameras;password=***" in log
    for key in keys.values():
        assert key not in log


def test_the_filter_masks_only_secret_parameters() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/v1/sightings?since=1&session=abc&q=a=b", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert record.getMessage() == (
        '127.0.0.1:5000 - "GET /v1/sightings?since=1&session=***&q=a=b HTTP/1.1" 200'
    )
