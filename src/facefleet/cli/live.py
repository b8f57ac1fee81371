"""The tenant's live events for `workers watch` and `sightings tail`: a snapshot, then every
event in order. A lost connection resumes from the last sequence number seen; close code
4009 (the server cannot replay what was missed) starts again from a fresh snapshot."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from facefleet.cli.client import Api, ApiFailure, CommandError, err

CLOSE_RESYNC = 4009
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
RETRY_MAX = 10.0


def whoami(api: Api) -> dict[str, Any]:
    me: dict[str, Any] = api.get("/v1/whoami")
    return me


def _refused(api: Api) -> CommandError:
    """Why the server refused the upgrade (it says so only over HTTP)."""
    try:
        me = whoami(api)
    except ApiFailure as exc:
        return exc
    return CommandError(f"a {me['role']} key cannot watch this tenant's events")


def messages(api: Api) -> Iterator[dict[str, Any]]:
    """Snapshots and events, forever; reconnects by itself."""
    tenant = whoami(api)["tenant_id"]
    base = f"{api.ws_base}/v1/workers/ws/{quote(tenant)}"
    seq: int | None = None
    attempt = 0
    while True:
        url = base if seq is None else f"{base}?since={seq}"
        try:
            with connect(
                url,
                additional_headers={"Authorization": f"Bearer {api.key}"},
                open_timeout=10,
                max_size=None,
            ) as socket:
                attempt = 0
                for raw in socket:
                    message: dict[str, Any] = json.loads(raw)
                    if message.get("type") == "event" and seq is not None and message["seq"] <= seq:
                        continue
                    seq = message["seq"]
                    yield message
            reason = "the control plane closed the connection"
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403):
                raise _refused(api) from None
            reason = f"upgrade refused with HTTP {exc.response.status_code}"
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            why = exc.rcvd.reason if exc.rcvd is not None else ""
            if code in (CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN):
                raise CommandError(why or "the key was refused") from None
            if code == CLOSE_RESYNC:
                seq = None  # nothing to resume from: a new snapshot
            reason = f"connection closed ({code}{': ' + why if why else ''})"
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            reason = f"cannot reach {api.url}: {exc}"
        attempt += 1
        wait = min(RETRY_MAX, 0.5 * 2 ** (attempt - 1))
        resume = "a new snapshot" if seq is None else f"event {seq}"
        err.print(f"[yellow]{reason}; reconnecting in {wait:.1f}s from {resume}[/yellow]")
        time.sleep(wait)
