"""Which failures the client retries, and how long it waits between attempts."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from tenacity import RetryCallState


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one request on connection errors, timeouts, 429 and 503."""

    max_attempts: int = 5
    max_total: float = 30.0  # seconds since the first attempt after which none starts
    backoff_initial: float = 0.5
    backoff_max: float = 8.0


RETRY_STATUSES = frozenset({429, 503})
# Errors where the server may not have seen the request, or was not there to answer.
RETRY_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


def is_retry_status(resp: httpx.Response) -> bool:
    return resp.status_code in RETRY_STATUSES


def last_outcome(state: RetryCallState) -> httpx.Response:
    """Out of retries: hand back the last response, or raise the last exception."""
    assert state.outcome is not None
    resp: httpx.Response = state.outcome.result()
    return resp
