"""What the worker does with each command type; the result is sent back in the ack."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import cv2

from facefleet.protocol.commands import AckStatus, CommandType
from facefleet.worker.worker_client import Command

if TYPE_CHECKING:
    from facefleet.worker.agent import WorkerAgent

log = logging.getLogger(__name__)

Outcome = tuple[AckStatus, dict[str, Any]]
SNAPSHOT_WIDTH = 320


def _camera_id(payload: dict[str, Any], agent: WorkerAgent) -> int | None:
    raw = payload.get("camera_id")
    if raw is None and len(agent.streams) == 1:
        return next(iter(agent.streams))
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


async def execute(agent: WorkerAgent, command: Command) -> Outcome:
    try:
        kind = CommandType(command.type)
    except ValueError:
        return "failed", {"error": f"unknown command type {command.type!r}"}
    try:
        return await _HANDLERS[kind](agent, command.payload)
    except Exception as exc:
        log.exception("command %s failed", kind.value)
        return "failed", {"error": f"{type(exc).__name__}: {exc}"}


async def _release(agent: WorkerAgent, payload: dict[str, Any]) -> Outcome:
    camera_id = _camera_id(payload, agent)
    if camera_id is None or not await agent.release(camera_id):
        return "failed", {"error": f"not streaming camera {payload.get('camera_id')}"}
    return "acked", {"released": camera_id}


async def _restart(agent: WorkerAgent, payload: dict[str, Any]) -> Outcome:
    camera_id = _camera_id(payload, agent)
    if camera_id is None or not await agent.restart(camera_id):
        return "failed", {"error": f"not streaming camera {payload.get('camera_id')}"}
    return "acked", {"restarted": camera_id}


async def _set_config(agent: WorkerAgent, payload: dict[str, Any]) -> Outcome:
    applied: dict[str, Any] = {}
    if "target_fps" in payload:
        fps = float(payload["target_fps"])
        if not 0 < fps <= 60:
            return "failed", {"error": "target_fps must be in (0, 60]"}
        for stream in agent.streams.values():
            stream.runner.target_fps = fps
        applied["target_fps"] = fps
    if "heartbeat_jitter" in payload:
        agent.state.jitter = max(0.0, min(0.5, float(payload["heartbeat_jitter"])))
        applied["heartbeat_jitter"] = agent.state.jitter
    ignored = sorted(set(payload) - set(applied))
    return "acked", {"applied": applied, "ignored": ignored}


async def _snapshot(agent: WorkerAgent, payload: dict[str, Any]) -> Outcome:
    camera_id = _camera_id(payload, agent)
    stream = agent.streams.get(camera_id) if camera_id is not None else None
    frame = stream.runner.source.latest(0) if stream is not None else None
    if frame is None:
        return "failed", {"error": f"no frame from camera {payload.get('camera_id')}"}
    height, width = frame.image.shape[:2]
    scale = min(1.0, SNAPSHOT_WIDTH / width)
    small = cv2.resize(frame.image, (int(width * scale), int(height * scale)))
    ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 70])
    if not ok:
        return "failed", {"error": "could not encode the frame"}
    return "acked", {
        "camera_id": camera_id,
        "width": width,
        "height": height,
        "jpeg_base64": base64.b64encode(jpeg.tobytes()).decode(),
    }


async def _reload_gallery(agent: WorkerAgent, payload: dict[str, Any]) -> Outcome:
    reloaded = 0
    for stream in agent.streams.values():
        reload = getattr(stream.runner.processor, "reload_gallery", None)
        if reload is not None:
            await reload()
            reloaded += 1
    return "acked", {"reloaded_streams": reloaded}


Handler = Callable[["WorkerAgent", dict[str, Any]], Awaitable[Outcome]]
_HANDLERS: dict[CommandType, Handler] = {
    CommandType.release_camera: _release,
    CommandType.restart_stream: _restart,
    CommandType.set_config: _set_config,
    CommandType.snapshot: _snapshot,
    CommandType.reload_gallery: _reload_gallery,
}
