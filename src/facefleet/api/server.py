"""Serving the control plane with uvicorn, telling its presence streams when it stops.

On SIGTERM or SIGINT the app's ``stopping`` event is set before uvicorn waits for open
requests: every presence stream then ends with a goodbye, so its worker knows this replica
is leaving on purpose and will not count it as gone (a killed replica cannot send one).
"""

from __future__ import annotations

import asyncio
from types import FrameType

import uvicorn
from fastapi import FastAPI

from facefleet.api.app import create_app
from facefleet.api.config import Settings


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        state = getattr(self._app.state, "facefleet", None)
        if state is not None:
            state.loop.call_soon_threadsafe(state.stopping.set)
        super().handle_exit(sig, frame)


def serve(settings: Settings) -> None:
    app = create_app(settings)
    # Bounded graceful shutdown: idle keep-alive connections must not hold a restart up.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=10,
    )
    asyncio.run(Server(config, app).serve())
