"""Commands that run facefleet's own processes here: serve, worker, demo, and the database's
maintenance: db upgrade, db new-key, db reencrypt."""

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


def _refuse(exc: Exception) -> typer.Exit:
    """A misconfiguration (no encryption key, say): one line on stderr, exit code 2."""
    print(f"error: {exc}", file=sys.stderr)
    return typer.Exit(2)


def serve(
    host: str | None = typer.Option(None, help="Bind address (FACEFLEET_HOST)."),
    port: int | None = typer.Option(None, help="Port (FACEFLEET_PORT)."),
) -> None:
    """Run the control plane (and its dashboard)."""
    from facefleet.api.database import server_cipher
    from facefleet.api.storage.db.encryption import EncryptionError

    settings = Settings()
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    try:
        server_cipher(settings)  # before anything starts: a missing key is one line
    except EncryptionError as exc:
        raise _refuse(exc) from None
    _banner(settings)
    from facefleet.api.server import serve as run_server

    run_server(settings)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from facefleet.api.database import open_database, prepare
    from facefleet.api.storage.db.encryption import EncryptionError

    settings = Settings()

    async def run() -> None:
        engine = open_database(settings)
        try:
            await prepare(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except EncryptionError as exc:
        raise _refuse(exc) from None
    out.print(f"database at {mask_source_url(settings.resolved_database_url)} is up to date")


@db_app.command("new-key")
def db_new_key() -> None:
    """Print a new encryption key for FACEFLEET_ENCRYPTION_KEYS (to rotate: put it first,
    keep the old one after it, restart every replica, run `facefleet db reencrypt`)."""
    from facefleet.api.database import new_key

    print(new_key())


@db_app.command("reencrypt")
def db_reencrypt() -> None:
    """Re-encrypt every camera source URL under the first key of FACEFLEET_ENCRYPTION_KEYS;
    afterwards the other keys can be dropped."""
    from facefleet.api.database import open_database, prepare
    from facefleet.api.storage.db.encryption import EncryptionError, cipher_of, reencrypt
    from facefleet.api.storage.db.models import Base

    settings = Settings()

    async def run() -> int:
        engine = open_database(settings)
        try:
            await prepare(engine)
            cipher = cipher_of(engine.sync_engine.dialect)
            async with engine.begin() as conn:
                return await conn.run_sync(reencrypt, Base.metadata, cipher)
        finally:
            await engine.dispose()

    try:
        done = asyncio.run(run())
    except EncryptionError as exc:
        raise _refuse(exc) from None
    out.print(f"re-encrypted {done} values under the first key")


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
