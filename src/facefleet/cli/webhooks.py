"""facefleet webhooks list | create | delete | test | deliveries | dead-letters | retry."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from facefleet.cli.client import Api, api_command, out

app = typer.Typer(
    help="Webhooks: endpoints, test deliveries, the delivery log and dead letters.",
    no_args_is_help=True,
)

WebhookArg = Annotated[int, typer.Argument(help="The endpoint's id.")]
LimitOption = Annotated[int, typer.Option(min=1, max=500, help="At most this many.")]


def endpoints_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title="webhooks")
    table.add_column("id")
    table.add_column("url", overflow="fold")  # shown whole, over several lines if need be
    for column in ("event types", "enabled", "pending", "delivered", "dead"):
        table.add_column(column)
    for e in items:
        counts = e["deliveries"]
        table.add_row(
            str(e["id"]),
            e["url"],
            ", ".join(e["event_types"]),
            "yes" if e["enabled"] else "no",
            str(counts["pending"]),
            str(counts["delivered"]),
            str(counts["dead"]),
        )
    return table


def deliveries_table(title: str, items: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("id", "event", "occurred at", "status", "attempts", "last answer"):
        table.add_column(column)
    for d in items:
        table.add_row(
            str(d["id"]),
            d["event_type"],
            d["occurred_at"],
            d["status"],
            str(d["attempts"]),
            d["last_error"] or (str(d["last_status_code"]) if d["last_status_code"] else ""),
        )
    return table


@app.command("list")
@api_command
def list_webhooks(api: Api) -> None:
    """The tenant's endpoints, with their deliveries by status."""
    items = api.get("/v1/webhooks")["items"]
    api.emit(items, lambda: out.print(endpoints_table(items)))


@app.command("create")
@api_command
def create_webhook(
    api: Api,
    url: Annotated[str, typer.Argument(help="Where deliveries are POSTed (http:// or https://).")],
    event: Annotated[
        list[str] | None,
        typer.Option("--event", "-e", help="An event type to deliver (repeat; '*' for all)."),
    ] = None,
    description: Annotated[str, typer.Option(help="What the endpoint is for.")] = "",
) -> None:
    """Subscribe a URL to event types and print its signing secret (shown only now)."""
    body = {"url": url, "event_types": event or ["*"], "description": description}
    created = api.post("/v1/webhooks", body)

    def render() -> None:
        out.print(f"webhook {created['id']} created for {', '.join(created['event_types'])}")
        out.print(f"signing secret: {created['secret']}")
        out.print("Store the secret now: it is never shown again.")

    api.emit(created, render)


@app.command("delete")
@api_command
def delete_webhook(api: Api, webhook_id: WebhookArg) -> None:
    """Delete an endpoint, its delivery log and its dead letters."""
    api.delete(f"/v1/webhooks/{webhook_id}")
    api.emit({"deleted": webhook_id}, lambda: out.print(f"webhook {webhook_id} deleted"))


@app.command("test")
@api_command
def test_webhook(api: Api, webhook_id: WebhookArg) -> None:
    """Send a signed ping now and show what the receiver answered."""
    result = api.post(f"/v1/webhooks/{webhook_id}/test")

    def render() -> None:
        attempt = result["delivery"]["log"][0]
        answer = attempt["error"] or f"HTTP {attempt['status_code']}"
        verdict = "delivered" if result["delivered"] else "not delivered (it will be retried)"
        out.print(f"ping {verdict}: {answer} in {attempt['duration_ms']:.0f} ms")

    api.emit(result, render)
    if not result["delivered"]:
        raise typer.Exit(1)


@app.command("deliveries")
@api_command
def deliveries(
    api: Api,
    webhook_id: WebhookArg,
    status: Annotated[str | None, typer.Option(help="pending, delivered or dead.")] = None,
    limit: LimitOption = 50,
) -> None:
    """The delivery log of an endpoint, newest first."""
    page = api.get(f"/v1/webhooks/{webhook_id}/deliveries", status=status, limit=limit)
    title = f"deliveries of webhook {webhook_id}"
    api.emit(page, lambda: out.print(deliveries_table(title, page["items"])))


@app.command("dead-letters")
@api_command
def dead_letters(api: Api, webhook_id: WebhookArg, limit: LimitOption = 50) -> None:
    """Deliveries that failed every attempt."""
    page = api.get(f"/v1/webhooks/{webhook_id}/dead-letters", limit=limit)
    title = f"dead letters of webhook {webhook_id}"
    api.emit(page, lambda: out.print(deliveries_table(title, page["items"])))


@app.command("retry")
@api_command
def retry(api: Api, webhook_id: WebhookArg, delivery_id: int) -> None:
    """Send a dead letter again."""
    result = api.post(f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry")
    api.emit(result, lambda: out.print(f"delivery {delivery_id} is pending again"))
