"""facefleet keys list | create | revoke | rotate: the tenant's API keys (an admin key's)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer
from rich.table import Table

from facefleet.cli.client import Api, CommandError, api_command, confirmed, out

app = typer.Typer(
    help="API keys of the tenant: create (shown once), list, rotate, revoke.",
    no_args_is_help=True,
)

KeyArg = Annotated[int, typer.Argument(help="The key's id (from `facefleet keys list`).")]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def seconds(text: str | None) -> float | None:
    """A duration: seconds, or a number with s, m, h or d (``90d``, ``12h``)."""
    if text is None:
        return None
    match = _DURATION.match(text)
    if match is None:
        raise CommandError(f"{text!r} is not a duration: use e.g. 3600, 45m, 12h or 90d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


TtlOption = Annotated[
    str | None,
    typer.Option("--ttl", help="The key stops working after this long (e.g. 90d, 12h, 3600)."),
]
ExpiresOption = Annotated[
    str | None,
    typer.Option("--expires-at", help="When the key stops working (ISO 8601; UTC without a zone)."),
]


def expiry(ttl: str | None, expires_at: str | None) -> dict[str, Any]:
    if ttl is not None and expires_at is not None:
        raise CommandError("give --ttl or --expires-at, not both")
    if ttl is not None:
        return {"ttl_seconds": seconds(ttl)}
    return {"expires_at": expires_at} if expires_at is not None else {}


def keys_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title="API keys")
    for column in ("id", "prefix", "role", "name", "status", "created", "expires", "revoked"):
        table.add_column(column)
    table.add_column("last used")
    for k in items:
        table.add_row(
            str(k["id"]),
            k["prefix"] + "…",
            k["role"],
            k["name"],
            k["status"],
            k["created_at"],
            k["expires_at"] or "",
            k["revoked_at"] or "",
            k["last_used_at"] or "",
        )
    return table


def show_new_key(created: dict[str, Any]) -> None:
    expires = f", expires {created['expires_at']}" if created["expires_at"] else ""
    out.print(f"{created['role']} key {created['id']} ({created['name']}){expires}:")
    out.print(created["key"])
    out.print("Store the key now: it is never shown again.")


@app.command("list")
@api_command
def list_keys(
    api: Api,
    all_keys: Annotated[bool, typer.Option("--all", help="Also revoked and expired keys.")] = False,
) -> None:
    """The tenant's keys: prefix, role, name, status, times (never the keys themselves)."""
    items = [k for k in api.get("/v1/keys")["items"] if all_keys or k["status"] == "active"]
    api.emit(items, lambda: out.print(keys_table(items)))


@app.command("create")
@api_command
def create_key(
    api: Api,
    role: Annotated[str, typer.Argument(help="admin, worker or viewer.")],
    name: Annotated[str, typer.Option(help="What the key is for.")] = "",
    ttl: TtlOption = None,
    expires_at: ExpiresOption = None,
) -> None:
    """Create a key and print it (shown only now)."""
    created = api.post("/v1/keys", {"role": role, "name": name, **expiry(ttl, expires_at)})
    api.emit(created, lambda: show_new_key(created))


@app.command("revoke")
@api_command
def revoke_key(
    api: Api,
    key_id: KeyArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Revoke a key: every replica refuses it from now on."""
    confirmed(f"Revoke key {key_id}? Whatever uses it stops working.", yes)
    revoked = api.request("DELETE", f"/v1/keys/{key_id}")
    api.emit(revoked, lambda: out.print(f"key {key_id} ({revoked['prefix']}…) revoked"))


@app.command("rotate")
@api_command
def rotate_key(
    api: Api,
    key_id: KeyArg,
    overlap: Annotated[
        str | None,
        typer.Option(help="Let the old key work this long more (e.g. 10m), to roll out the new."),
    ] = None,
    ttl: TtlOption = None,
    expires_at: ExpiresOption = None,
) -> None:
    """Replace a key by a new one with its role and name; the old one is revoked now, or
    expires after --overlap."""
    body = {"overlap_seconds": seconds(overlap) or 0, **expiry(ttl, expires_at)}
    rotated = api.post(f"/v1/keys/{key_id}/rotate", body)

    def render() -> None:
        old = rotated["old"]
        if old["status"] == "revoked":
            out.print(f"key {key_id} revoked")
        else:
            out.print(f"key {key_id} keeps working until {old['expires_at']}")
        show_new_key(rotated["new"])

    api.emit(rotated, render)
