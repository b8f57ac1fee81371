"""Commands that run facefleet's own processes here: serve, worker, demo, db upgrade."""

from __future__ import annotations

import asyncio
import logging
import sys

import typer

from facefleet.api.config import Settings
from facefleet.cli.client import out
from facefleet.protocol.source_urls import mask_source_url

db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def dashboard_url(settings: Settings) -> str:
    return f"http://{settings.host}:{settings.port}/"


def _banner(settings: Settings) -> None:
    from facefleet.api.bootstrap import keys_path

    base = f"http://{settings.host}:{settings.port}"
    out.print(f"[bold]facefleet dashboard:[/bold] {dashboard_url(settings)}")
    out.print(f"  control plane API:   {base}  (OpenAPI docs: {base}/docs)")
    out.print(f"  database:            {mask_source_url(settings.resolved_database_url)}")
    out.print(f"  default tenant keys: {keys_path(settings.data_dir).resolve()}")


def serve(
    host: str | None = typer.Option(None, help="Bind address (FACEFLEET_HOST)."),
    port: int | None = typer.Option(None, help="Port (FACEFLEET_PORT)."),
) -> None:
    """Run the control plane (and its dashboard)."""
    settings = Settings()
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    _banner(settings)
    from facefleet.api.server import serve as run_server

    run_server(settings)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from facefleet.api.storage.db.engine import create_engine
    from facefleet.api.storage.db.migrate import upgrade

    settings = Settings()

    async def run() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    out.print(f"database at {mask_source_url(settings.resolved_database_url)} is up to date")


def demo() -> None:
    """Run the control plane with demo cameras and two workers (what `make run` does)."""
    from facefleet.api.bootstrap import keys_path
    from facefleet.demo.fleet import run_demo

    settings = Settings()
    # First, before anything else prints: where to look.
    out.print(
        f"[bold]facefleet dashboard:[/bold] {dashboard_url(settings)}  "
        f"(sign in with the admin key in {keys_path(settings.data_dir)})"
    )
    sys.stdout.flush()
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    raise typer.Exit(run_demo(settings))


def worker() -> None:
    """Run a worker (FACEFLEET_WORKER_* settings; identity from WORKER_ID, .env or state)."""
    from facefleet.worker.main import main as worker_main

    raise typer.Exit(worker_main())
