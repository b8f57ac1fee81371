"""A face engine loaded on first use: the models take a moment, and a process that never
analyses a face (a control plane without gallery traffic) never pays for them."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from facefleet.face.engine import FaceEngine


class EngineLoader:
    def __init__(self, **options: Any) -> None:
        self._options = options
        self._engine: FaceEngine | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> FaceEngine:
        async with self._lock:
            if self._engine is None:
                # Imported here: OpenCV, numpy and dlib load only when a face is analysed.
                from facefleet.face.engine import FaceEngine

                self._engine = await asyncio.to_thread(FaceEngine, **self._options)
            return self._engine
