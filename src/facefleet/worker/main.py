"""``facefleet worker``: resolve the identity, run the agent, leave cleanly on a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from facefleet.worker.agent import IdentityRefused, RunnerFactory, WorkerAgent
from facefleet.worker.config import WorkerSettings
from facefleet.worker.frame_log import FrameLog
from facefleet.worker.local_store import LocalStore
from facefleet.worker.pipeline.face_pipeline import FacePipeline, load_engine, processor_config
from facefleet.worker.pipeline.processor import CameraRunner, MeasuringProcessor
from facefleet.worker.pipeline.reporter import SightingOutbox
from facefleet.worker.pipeline.source import FrameSource
from facefleet.worker.supervisor import LoopFailed
from facefleet.worker.worker_client import Assignment, WorkerClient, WorkerClientError
from facefleet.worker.worker_id_manager import (
    InvalidWorkerId,
    default_state_dir,
    resolve_worker_id,
)

log = logging.getLogger("facefleet.worker")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_ID_IN_USE = 3
EXIT_API = 4
EXIT_LOOP = 5


def measuring_runner(assignment: Assignment) -> CameraRunner:
    """A stream that is only counted and timed (FACEFLEET_WORKER_PIPELINE=measure)."""
    return CameraRunner(
        FrameSource(assignment.source_url), MeasuringProcessor(), assignment.target_fps
    )


async def run_worker(settings: WorkerSettings) -> int:
    try:
        identity = resolve_worker_id()
    except InvalidWorkerId as exc:
        log.error("invalid WORKER_ID: %s", exc)
        return EXIT_CONFIG
    if not settings.api_key:
        log.error("no API key: set FACEFLEET_WORKER_API_KEY to the tenant's worker key")
        return EXIT_CONFIG
    log.info("worker_id %s (from %s)", identity.worker_id, identity.source.value)
    client = WorkerClient(
        settings.api_url,
        settings.api_key,
        identity.worker_id,
        capacity=settings.capacity,
        labels=settings.labels,
        timeout=settings.request_timeout,
    )
    state_dir = default_state_dir()
    store = LocalStore(state_dir / f"agent-{identity.worker_id}.sqlite3")
    outbox = SightingOutbox(store, client)
    frame_log = FrameLog(settings.frame_log, identity.worker_id) if settings.frame_log else None
    try:
        async with client:
            runner_factory: RunnerFactory = measuring_runner
            if settings.pipeline == "face":
                engine = await load_engine(settings)
                pipeline = FacePipeline(client, engine, outbox, processor_config(settings))
                runner_factory = pipeline.runner
            agent = WorkerAgent(
                client,
                runner_factory,
                store=store,
                fence_margin=settings.fence_margin,
                shutdown_timeout=settings.shutdown_timeout,
                start_timeout=settings.stream_start_timeout,
                stall_timeout=settings.stream_stall_timeout,
                frame_log=frame_log,
                services={"sightings": outbox.run},
            )
            outbox.on_stale = agent.stop_stale_stream
            _install_signal_handlers(agent)
            async with agent:
                await agent.run()
    except IdentityRefused as exc:
        log.error("refused: %s", exc)
        return EXIT_ID_IN_USE
    except LoopFailed as exc:
        log.error("giving up: %s", exc)
        return EXIT_LOOP
    except WorkerClientError as exc:
        log.error("control plane error: %s", exc)
        return EXIT_API
    finally:
        store.close()
        if frame_log is not None:
            frame_log.close()
    return EXIT_OK


def _install_signal_handlers(agent: WorkerAgent) -> None:
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if received:
            # A second signal: the operator wants out now.
            os._exit(128 + signum)
        received.append(signum)
        log.info("received %s: stopping streams and leaving", signal.Signals(signum).name)
        agent.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # One line per request is noise at a 2 s heartbeat; failures are logged by the agent.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return asyncio.run(run_worker(WorkerSettings()))
