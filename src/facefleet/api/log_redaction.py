"""Secrets never reach a log line: request paths the server logs (uvicorn's access log and
its WebSocket lines) have every secret-looking parameter masked by the same rule as camera
URLs. No route takes a secret in its URL; this covers a client that sends one anyway."""

from __future__ import annotations

import logging
from urllib.parse import unquote

from facefleet.protocol.source_urls import mask_source_url

# uvicorn's access log, and its error logger, which logs WebSocket handshakes with their path.
SERVER_LOGGERS = ("uvicorn.access", "uvicorn.error")


class RedactSecrets(logging.Filter):
    """Masks secret parameters in a record's string arguments that are paths."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_path(arg) if isinstance(arg, str) and "/" in arg else arg
                for arg in record.args
            )
        return True


def redact_path(path: str) -> str:
    """A request path as logged: decoded (so ``%3D`` hides nothing), then masked."""
    return mask_source_url(unquote(path))


def install_redaction() -> None:
    """Add the filter to the server's loggers, once (every app in a process shares them)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
