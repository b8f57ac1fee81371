"""facefleet workers list | watch | drain | undrain | shutdown."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.live import Live
from rich.table import Table

from facefleet.cli.client import Api, api_command, confirmed, emit_json_line, out
from facefleet.cli.live import messages

app = typer.Typer(
    help="The fleet's workers: list, watch live, drain, shut down.", no_args_is_help=True
)

STATUS_STYLE = {
    "online": "green",
    "suspect": "yellow",
    "draining": "blue",
    "stopping": "magenta",
    "offline": "red",
    "deregistered": "bright_black",
}


class StopMode(StrEnum):
    graceful = "graceful"
    immediate = "immediate"


WorkerArg = Annotated[str, typer.Argument(help="The worker's WORKER_ID.")]


def heartbeat_age(last_seen_at: str | None, now: float) -> str:
    if not last_seen_at:
        return "never"
    seconds = max(0.0, now - datetime.fromisoformat(last_seen_at).timestamp())
    if seconds < 90:
        return f"{seconds:.0f}s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f}min ago"
    return f"{seconds / 3600:.0f}h ago"


def worker_table(workers: list[dict[str, Any]], cameras: dict[int, str], title: str) -> Table:
    now = datetime.now().timestamp()
    table = Table(title=title, title_justify="left")
    for column in ("worker", "status", "cameras", "fps", "heartbeat", "labels", "version"):
        table.add_column(column, justify="right" if column == "fps" else "left")
    table.add_column("desired")
    for w in sorted(workers, key=lambda w: str(w["worker_id"])):
        held = ", ".join(cameras.get(c["camera_id"], f"#{c['camera_id']}") for c in w["cameras"])
        fps = (w.get("metrics") or {}).get("fps")
        style = STATUS_STYLE.get(w["status"], "")
        table.add_row(
            w["worker_id"],
            f"[{style}]{w['status']}[/{style}]" if style else w["status"],
            held or "-",
            f"{float(fps):.1f}" if isinstance(fps, int | float) else "-",
            heartbeat_age(w.get("last_seen_at"), now),
            ", ".join(w.get("labels") or []) or "-",
            w.get("version") or "-",
            w.get("desired_state") or "-",
        )
    return table


def camera_names(api: Api) -> dict[int, str]:
    return {c["id"]: c["name"] for c in api.every("/v1/cameras")}


@app.command("list")
@api_command
def list_workers(
    api: Api,
    status: Annotated[
        str | None, typer.Option(help="Only workers in this status (online, draining, ...).")
    ] = None,
    label: Annotated[str | None, typer.Option(help="Only workers with this label.")] = None,
) -> None:
    """Every worker: status, cameras held, fps, last heartbeat, labels, version."""
    workers = list(api.every("/v1/workers", status=status, label=label))
    api.emit(
        workers,
        lambda: out.print(worker_table(workers, camera_names(api), f"{len(workers)} workers")),
    )


class FleetView:
    """Workers as the live events leave them."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.workers: dict[str, dict[str, Any]] = {}
        self.cameras: dict[int, str] = {}

    def snapshot(self, data: dict[str, Any]) -> None:
        self.workers = {w["worker_id"]: w for w in data["workers"]}
        self.cameras = {c["id"]: c["name"] for c in data["cameras"]}

    def apply(self, kind: str, d: dict[str, Any], ts: float) -> None:
        worker_id = d.get("worker_id")
        if kind == "registered" and worker_id:
            self.workers[worker_id] = self.api.get(f"/v1/workers/{quote(worker_id)}")
            return
        w = self.workers.get(str(worker_id))
        if w is None:
            return
        if kind == "status_changed":
            w["status"] = d["to"]
            if d["to"] == "draining":
                w["desired_state"] = "drain"
            elif d["to"] == "online" and d.get("from") == "draining":
                w["desired_state"] = "run"
        elif kind == "shutdown_signalled":
            w["status"], w["desired_state"] = "stopping", "stop"
        elif kind == "deregistered":
            w["status"], w["cameras"] = "deregistered", []
        elif kind == "camera_assigned":
            w["cameras"] = [c for c in w["cameras"] if c["camera_id"] != d["camera_id"]]
            w["cameras"].append({"camera_id": d["camera_id"], "epoch": d["epoch"]})
            if d["camera_id"] not in self.cameras:
                self.cameras = camera_names(self.api)
        elif kind == "camera_released":
            w["cameras"] = [c for c in w["cameras"] if c["camera_id"] != d["camera_id"]]

    def stats(self, d: dict[str, Any], ts: float) -> None:
        seen = datetime.fromtimestamp(ts).astimezone().isoformat()
        for worker_id, metrics in (d.get("metrics") or {}).items():
            if worker_id in self.workers:
                self.workers[worker_id].update(metrics=metrics, last_seen_at=seen)


@app.command("watch")
@api_command
def watch(api: Api) -> None:
    """The worker table, live from the tenant's WebSocket (Ctrl-C to stop). With --json,
    every snapshot and event as one JSON line."""
    if api.json:
        for message in messages(api):
            emit_json_line(message)
        return
    view = FleetView(api)
    with Live(console=out, auto_refresh=False) as live:
        for message in messages(api):
            if message["type"] == "snapshot":
                view.snapshot(message["data"])
            elif message["kind"] == "stats":
                view.stats(message["data"], message["ts"])
            else:
                view.apply(message["kind"], message["data"], message["ts"])
            title = f"{len(view.workers)} workers, live (event {message['seq']})"
            live.update(worker_table(list(view.workers.values()), view.cameras, title))
            live.refresh()


def _control(api: Api, worker_id: str, action: str, body: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = api.post(f"/v1/workers/{quote(worker_id)}/{action}", body)
    return result


@app.command("drain")
@api_command
def drain(api: Api, worker_id: WorkerArg) -> None:
    """Take no new cameras and hand the current ones to other workers, one by one."""
    result = _control(api, worker_id, "drain")
    api.emit(result, lambda: out.print(f"{worker_id} is {result['status']}"))


@app.command("undrain")
@api_command
def undrain(api: Api, worker_id: WorkerArg) -> None:
    """Take cameras again after a drain."""
    result = _control(api, worker_id, "undrain")
    api.emit(result, lambda: out.print(f"{worker_id} is {result['status']}"))


@app.command("shutdown")
@api_command
def shutdown(
    api: Api,
    worker_id: WorkerArg,
    mode: Annotated[
        StopMode,
        typer.Option(help="graceful: finish in-flight work; immediate: stop the streams now."),
    ] = StopMode.graceful,
    reason: Annotated[str, typer.Option(help="Recorded in the worker's history.")] = "",
    deadline: Annotated[
        float | None,
        typer.Option(help="Seconds after which the worker is forced offline if still there."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Tell a worker to stop: it gives its cameras back and exits."""
    confirmed(f"Shut worker {worker_id!r} down?", yes)
    body: dict[str, Any] = {"mode": mode.value, "reason": reason or "requested from the CLI"}
    if deadline is not None:
        body["deadline_seconds"] = deadline
    result = _control(api, worker_id, "shutdown/signal", body)
    released = result.get("released_cameras") or []
    api.emit(
        result,
        lambda: out.print(
            f"{worker_id} is {result['status']}"
            + (f"; released cameras {released}" if released else "")
        ),
    )
