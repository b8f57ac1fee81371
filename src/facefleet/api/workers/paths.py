"""The worker_id path parameter of every /v1/workers/{worker_id} route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from facefleet.protocol.ids import WORKER_ID_PATTERN

WORKER_ID_PATH = Path(pattern=WORKER_ID_PATTERN, description="The worker's WORKER_ID.")
WorkerPath = Annotated[str, WORKER_ID_PATH]
