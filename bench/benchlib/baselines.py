"""The bare baselines facefleet is measured against: Starlette apps on the same server stack
that do only the protocol's part of the work. uvicorn loads them with ``--factory``."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

HEARTBEAT_APP = "benchlib.baselines:heartbeat_app"
BROADCAST_APP = "benchlib.baselines:broadcast_app"


async def _heartbeat(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"status": "online", "fps": body["metrics"]["fps"]})


def heartbeat_app() -> Starlette:
    """The heartbeat's path and body parsing, none of its work."""
    return Starlette(
        routes=[Route("/v1/workers/{worker_id}/heartbeat", _heartbeat, methods=["POST"])]
    )


def broadcast_app() -> Starlette:
    """Each POST /change sends one JSON event to every WebSocket client of /ws."""
    clients: set[WebSocket] = set()

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        clients.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except Exception:  # the client went away, however it did
            pass
        finally:
            clients.discard(websocket)

    async def change(request: Request) -> JSONResponse:
        body: Any = await request.json()
        message = {"type": "event", "kind": "camera_assigned", "data": body}
        for client in list(clients):
            await client.send_json(message)
        return JSONResponse({"sent": len(clients)})

    return Starlette(routes=[WebSocketRoute("/ws", ws), Route("/change", change, methods=["POST"])])
