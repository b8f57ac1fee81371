"""facefleet cameras add | list | edit | rm."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from facefleet.cli.client import Api, CommandError, api_command, confirmed, out

app = typer.Typer(help="The tenant's cameras: add, list, edit, remove.", no_args_is_help=True)

CameraArg = Annotated[str, typer.Argument(help="The camera's id or name.")]
FpsOption = Annotated[
    float | None, typer.Option("--fps", help="Frames to process per second (0-60].")
]
LabelOption = Annotated[
    list[str] | None,
    typer.Option("--label", help="A label a worker must have to take it (repeatable)."),
]
PriorityOption = Annotated[int | None, typer.Option(help="Higher is assigned first (-1000..1000).")]
ThresholdOption = Annotated[
    float | None, typer.Option("--threshold", help="Match threshold overriding the tenant's.")
]


def find_camera(api: Api, ref: str) -> dict[str, Any]:
    """A camera by id or by name."""
    if ref.isdigit():
        camera: dict[str, Any] = api.get(f"/v1/cameras/{ref}")
        return camera
    for camera in api.every("/v1/cameras"):
        if camera["name"] == ref:
            return camera
    raise CommandError(f"no camera named {ref!r}")


def state_of(camera: dict[str, Any]) -> str:
    """The control plane's processing state when it reports one, else what the lease says."""
    if camera.get("state"):
        return str(camera["state"])
    if not camera["enabled"]:
        return "disabled"
    return "assigned" if camera["lease"]["worker_id"] else "unassigned"


def holder_of(camera: dict[str, Any]) -> str | None:
    holder: str | None = (
        camera["worker_id"]
        if camera.get("state") and "worker_id" in camera
        else camera["lease"]["worker_id"]
    )
    return holder


def show(camera: dict[str, Any]) -> str:
    return f"camera {camera['id']} {camera['name']!r} ({camera['source_url']})"


@app.command("list")
@api_command
def list_cameras(api: Api) -> None:
    """Every camera with its state, holder, lease epoch and source (credentials masked)."""
    cameras = list(api.every("/v1/cameras"))

    def render() -> None:
        table = Table(title=f"{len(cameras)} cameras", title_justify="left")
        for column in ("id", "name", "state", "holder", "epoch", "fps", "last error"):
            table.add_column(
                column, justify="right" if column in ("id", "epoch", "fps") else "left"
            )
        for column in ("labels", "priority", "source"):
            table.add_column(column)
        for c in sorted(cameras, key=lambda c: int(c["id"])):
            fps = c.get("fps")
            table.add_row(
                str(c["id"]),
                c["name"],
                state_of(c),
                holder_of(c) or "-",
                str(c["lease"]["epoch"]),
                f"{float(fps):.1f}" if isinstance(fps, int | float) else "-",
                c.get("last_error") or "",
                ", ".join(c["required_labels"]) or "-",
                str(c["priority"]),
                c["source_url"],
            )
        out.print(table)

    api.emit(cameras, render)


@app.command("add")
@api_command
def add(
    api: Api,
    name: Annotated[str, typer.Argument(help="Unique within the tenant.")],
    source_url: Annotated[
        str, typer.Argument(help="rtsp://, http(s)://, file:// or device:// source.")
    ],
    fps: FpsOption = None,
    label: LabelOption = None,
    priority: PriorityOption = None,
    threshold: ThresholdOption = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Add it switched off.")] = False,
) -> None:
    """Add a camera; a free worker takes it within a heartbeat or two."""
    body: dict[str, Any] = {"name": name, "source_url": source_url, "enabled": not disabled}
    for key, value in (
        ("target_fps", fps),
        ("required_labels", label),
        ("priority", priority),
        ("match_threshold", threshold),
    ):
        if value is not None:
            body[key] = value
    camera = api.post("/v1/cameras", body)
    api.emit(camera, lambda: out.print(f"added {show(camera)}"))


@app.command("edit")
@api_command
def edit(
    api: Api,
    camera: CameraArg,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    source_url: Annotated[str | None, typer.Option(help="A new source URL.")] = None,
    fps: FpsOption = None,
    label: LabelOption = None,
    no_labels: Annotated[
        bool, typer.Option("--no-labels", help="Require no label any more.")
    ] = False,
    priority: PriorityOption = None,
    threshold: ThresholdOption = None,
    enable: Annotated[
        bool | None,
        typer.Option("--enable/--disable", help="Switch it on or off.", show_default=False),
    ] = None,
) -> None:
    """Change a camera; disabling it or changing its source takes it from its worker."""
    found = find_camera(api, camera)
    changes: dict[str, Any] = {}
    for key, value in (
        ("name", name),
        ("source_url", source_url),
        ("target_fps", fps),
        ("required_labels", [] if no_labels else label),
        ("priority", priority),
        ("match_threshold", threshold),
        ("enabled", enable),
    ):
        if value is not None:
            changes[key] = value
    if not changes:
        raise CommandError("nothing to change: give at least one option (see --help)")
    updated = api.patch(f"/v1/cameras/{found['id']}", changes)
    api.emit(updated, lambda: out.print(f"updated {show(updated)}"))


@app.command("rm")
@api_command
def remove(
    api: Api,
    camera: CameraArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a camera (its sightings are kept)."""
    found = find_camera(api, camera)
    confirmed(f"Remove {show(found)}?", yes)
    api.delete(f"/v1/cameras/{found['id']}")
    api.emit(
        {"removed": found["id"], "name": found["name"]},
        lambda: out.print(f"removed {show(found)}"),
    )
