"""facefleet tenants create: a new tenant and its keys, written to the local database."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from facefleet.cli.client import CommandError, JsonOption, emit_json, fail, out

app = typer.Typer(help="Tenants and their API keys.", no_args_is_help=True)


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="The tenant's unique name.")],
    json_output: JsonOption = False,
) -> None:
    """Create a tenant in the database FACEFLEET_DATABASE_URL names and print its new API
    keys (shown once: only their hashes are kept)."""
    from facefleet.api.config import Settings
    from facefleet.api.database import open_database, prepare
    from facefleet.api.errors import FacefleetError
    from facefleet.api.storage.db.encryption import EncryptionError
    from facefleet.api.storage.db.engine import create_sessionmaker
    from facefleet.api.tenants.service import CreatedTenant, create_tenant

    settings = Settings()

    async def run() -> CreatedTenant:
        engine = open_database(settings)
        try:
            await prepare(engine)
            async with create_sessionmaker(engine)() as session:
                created = await create_tenant(session, name)
                await session.commit()
                return created
        finally:
            await engine.dispose()

    try:
        created = asyncio.run(run())
    except FacefleetError as exc:
        raise fail(CommandError(exc.detail), json_output) from None
    except EncryptionError as exc:
        raise fail(CommandError(str(exc)), json_output) from None
    keys = {role.value: key for role, key in created.keys.items()}
    if json_output:
        emit_json({"tenant": created.name, "tenant_id": created.id, "keys": keys})
        return
    table = Table(title=f"tenant {created.name} ({created.id})")
    table.add_column("role")
    table.add_column("API key")
    for role, key in keys.items():
        table.add_row(role, key)
    out.print(table)
    out.print("Store these keys now: only their hashes are kept.")
