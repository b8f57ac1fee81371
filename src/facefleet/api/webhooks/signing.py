"""Webhook signatures, as Stripe and GitHub sign theirs: an HMAC-SHA256 of the timestamp and
the body, so a receiver can check who sent a delivery and refuse an old one replayed.

    X-Facefleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "X-Facefleet-Signature"
SCHEME = "v1"
SECRET_PREFIX = "whsec_"
# A receiver should refuse a signature older than this (a replayed delivery).
DEFAULT_TOLERANCE = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of the signature header for ``body`` sent at ``timestamp``."""
    return f"t={timestamp},{SCHEME}={_mac(secret, timestamp, body)}"


def verify(
    secret: str, header: str, body: bytes, *, now: float, tolerance: float = DEFAULT_TOLERANCE
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds of now."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME:
            signatures.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, s) for s in signatures)
