"""The one ``facefleet`` command."""

from __future__ import annotations

import asyncio
import logging

import typer
from rich.console import Console
from rich.table import Table

from facefleet.api.bootstrap import keys_path
from facefleet.api.config import Settings
from facefleet.api.storage.db.engine import create_engine, create_sessionmaker
from facefleet.api.storage.db.migrate import upgrade
from facefleet.webhooks_cli import webhooks_app

app = typer.Typer(
    help="facefleet: face recognition for camera fleets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
tenants_app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenants_app, name="tenants")
app.add_typer(webhooks_app, name="webhooks")
console = Console()


def _banner(settings: Settings) -> None:
    base = f"http://{settings.host}:{settings.port}"
    console.print(f"[bold]facefleet control plane[/bold] on {base}")
    console.print(f"  API docs (OpenAPI): {base}/docs")
    console.print(f"  database:           {settings.resolved_database_url}")
    console.print(f"  default tenant keys: {keys_path(settings.data_dir).resolve()}")


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Bind address (FACEFLEET_HOST)."),
    port: int | None = typer.Option(None, help="Port (FACEFLEET_PORT)."),
) -> None:
    """Run the control plane."""
    settings = Settings()
    settings = settings.model_copy(
        update={"host": host or settings.host, "port": port or settings.port}
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    _banner(settings)
    from facefleet.api.server import serve as run_server

    run_server(settings)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    settings = Settings()

    async def run() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
    console.print(f"database at {settings.resolved_database_url} is up to date")


@tenants_app.command("create")
def tenants_create(name: str) -> None:
    """Create a tenant and print its new API keys (shown once)."""
    from facefleet.api.errors import FacefleetError
    from facefleet.api.tenants.service import create_tenant

    settings = Settings()

    async def run() -> None:
        engine = create_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
            async with create_sessionmaker(engine)() as session:
                created = await create_tenant(session, name)
                await session.commit()
        finally:
            await engine.dispose()
        table = Table(title=f"tenant {created.name} ({created.id})")
        table.add_column("role")
        table.add_column("API key")
        for role, key in created.keys.items():
            table.add_row(role.value, key)
        console.print(table)
        console.print("Store these keys now: only their hashes are kept.")

    try:
        asyncio.run(run())
    except FacefleetError as exc:
        console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(2) from exc


@app.command()
def demo() -> None:
    """Run the control plane with demo cameras and two workers (what `make run` does)."""
    from facefleet.demo.fleet import run_demo

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    raise typer.Exit(run_demo(Settings()))


@app.command()
def worker() -> None:
    """Run a worker (FACEFLEET_WORKER_* settings; identity from WORKER_ID, .env or state)."""
    from facefleet.worker.main import main as worker_main

    raise typer.Exit(worker_main())


def main() -> None:
    app()
