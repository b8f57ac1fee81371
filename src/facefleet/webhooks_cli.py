"""``facefleet webhooks``: a tenant's webhook endpoints through the API (an admin key to
change them, any reader key to list them)."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.table import Table

webhooks_app = typer.Typer(
    help="Webhooks: endpoints, test deliveries, the delivery log and dead letters.",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)

ApiUrl = typer.Option(
    "http://127.0.0.1:8000", "--api-url", envvar="FACEFLEET_API_URL", help="The control plane."
)
ApiKey = typer.Option(
    ...,
    "--api-key",
    envvar="FACEFLEET_API_KEY",
    help="An API key of the tenant.",
    show_default=False,
)
AsJson = typer.Option(False, "--json", help="Print the API's JSON instead of a table.")


def _fail(message: str) -> NoReturn:
    errors.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def _call(api_url: str, api_key: str, method: str, path: str, **kwargs: Any) -> Any:
    """The JSON answer of one API call; the API's own message and exit 1 on an error."""
    try:
        with httpx.Client(
            base_url=api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=30,
        ) as http:
            resp = http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        _fail(f"cannot reach the control plane at {api_url}: {exc}")
    if resp.status_code >= 400:
        try:
            body = resp.json()
            name, detail = body.get("error", f"HTTP {resp.status_code}"), body.get("detail")
        except ValueError:
            name, detail = f"HTTP {resp.status_code}", resp.text
        _fail(f"{name}: {detail}")
    return resp.json() if resp.content else None


def _print_json(value: Any) -> None:
    console.print_json(json.dumps(value))


def _endpoints_table(items: list[dict[str, Any]]) -> Table:
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


def _deliveries_table(title: str, items: list[dict[str, Any]]) -> Table:
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


@webhooks_app.command("list")
def list_webhooks(api_url: str = ApiUrl, api_key: str = ApiKey, as_json: bool = AsJson) -> None:
    """The tenant's endpoints, with their deliveries by status."""
    items = _call(api_url, api_key, "GET", "/v1/webhooks")["items"]
    if as_json:
        _print_json(items)
    else:
        console.print(_endpoints_table(items))


@webhooks_app.command("create")
def create_webhook(
    url: str = typer.Argument(..., help="Where deliveries are POSTed (http:// or https://)."),
    event: list[str] = typer.Option(
        ["*"], "--event", "-e", help="An event type to deliver (repeat; '*' for all)."
    ),
    description: str = typer.Option("", help="What the endpoint is for."),
    api_url: str = ApiUrl,
    api_key: str = ApiKey,
    as_json: bool = AsJson,
) -> None:
    """Subscribe a URL to event types and print its signing secret (shown only now)."""
    created = _call(
        api_url,
        api_key,
        "POST",
        "/v1/webhooks",
        json={"url": url, "event_types": event, "description": description},
    )
    if as_json:
        _print_json(created)
        return
    console.print(f"webhook {created['id']} created for {', '.join(created['event_types'])}")
    console.print(f"signing secret: {created['secret']}", highlight=False)
    console.print("Store the secret now: it is never shown again.")


@webhooks_app.command("delete")
def delete_webhook(
    webhook_id: int, api_url: str = ApiUrl, api_key: str = ApiKey, as_json: bool = AsJson
) -> None:
    """Delete an endpoint, its delivery log and its dead letters."""
    _call(api_url, api_key, "DELETE", f"/v1/webhooks/{webhook_id}")
    if as_json:
        _print_json({"deleted": webhook_id})
    else:
        console.print(f"webhook {webhook_id} deleted")


@webhooks_app.command("test")
def test_webhook(
    webhook_id: int, api_url: str = ApiUrl, api_key: str = ApiKey, as_json: bool = AsJson
) -> None:
    """Send a signed ping now and show what the receiver answered."""
    result = _call(api_url, api_key, "POST", f"/v1/webhooks/{webhook_id}/test")
    if as_json:
        _print_json(result)
    else:
        attempt = result["delivery"]["log"][0]
        answer = attempt["error"] or f"HTTP {attempt['status_code']}"
        verdict = "delivered" if result["delivered"] else "not delivered (it will be retried)"
        console.print(f"ping {verdict}: {answer} in {attempt['duration_ms']:.0f} ms")
    if not result["delivered"]:
        raise typer.Exit(1)


@webhooks_app.command("deliveries")
def deliveries(
    webhook_id: int,
    status: str | None = typer.Option(None, help="pending, delivered or dead."),
    limit: int = typer.Option(50, min=1, max=500),
    api_url: str = ApiUrl,
    api_key: str = ApiKey,
    as_json: bool = AsJson,
) -> None:
    """The delivery log of an endpoint, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    page = _call(api_url, api_key, "GET", f"/v1/webhooks/{webhook_id}/deliveries", params=params)
    if as_json:
        _print_json(page)
    else:
        console.print(_deliveries_table(f"deliveries of webhook {webhook_id}", page["items"]))


@webhooks_app.command("dead-letters")
def dead_letters(
    webhook_id: int,
    limit: int = typer.Option(50, min=1, max=500),
    api_url: str = ApiUrl,
    api_key: str = ApiKey,
    as_json: bool = AsJson,
) -> None:
    """Deliveries that failed every attempt."""
    page = _call(
        api_url, api_key, "GET", f"/v1/webhooks/{webhook_id}/dead-letters", params={"limit": limit}
    )
    if as_json:
        _print_json(page)
    else:
        console.print(_deliveries_table(f"dead letters of webhook {webhook_id}", page["items"]))


@webhooks_app.command("retry")
def retry(
    webhook_id: int,
    delivery_id: int,
    api_url: str = ApiUrl,
    api_key: str = ApiKey,
    as_json: bool = AsJson,
) -> None:
    """Send a dead letter again."""
    path = f"/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry"
    result = _call(api_url, api_key, "POST", path)
    if as_json:
        _print_json(result)
    else:
        console.print(f"delivery {delivery_id} is pending again")
