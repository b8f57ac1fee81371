"""The one ``facefleet`` command.

Local commands run facefleet's processes (serve, worker, demo, db, tenants); the others
talk to a control plane's API and share one client (``facefleet.cli.client``): each takes
--api-url, --api-key and --json.
"""

from __future__ import annotations

import typer

from facefleet.cli import cameras, keys, local, people, sightings, tenants, webhooks, workers

app = typer.Typer(
    help="facefleet: face recognition for camera fleets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# Processes on this machine.
app.command()(local.serve)
app.command()(local.worker)
app.command()(local.demo)
app.add_typer(local.db_app, name="db")
app.add_typer(tenants.app, name="tenants")

# The control plane's API.
app.add_typer(workers.app, name="workers")
app.add_typer(cameras.app, name="cameras")
app.add_typer(people.app, name="people")
app.add_typer(sightings.app, name="sightings")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(keys.app, name="keys")


def main() -> None:
    app()
