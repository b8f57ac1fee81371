"""facefleet sightings tail: who is being seen, live."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from facefleet.cli.client import Api, CommandError, api_command, emit_json_line, out
from facefleet.cli.live import messages

app = typer.Typer(help="Sightings: who was seen by which camera.", no_args_is_help=True)


class Names:
    """Camera and person names, looked up again when an unknown id shows up."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.cameras: dict[int, str] = {}
        self.people: dict[int, str] = {}

    def load_cameras(self) -> None:
        self.cameras = {c["id"]: c["name"] for c in self.api.every("/v1/cameras")}

    def load_people(self) -> None:
        self.people = {p["id"]: p["name"] for p in self.api.every("/v1/people")}

    def camera(self, camera_id: int) -> str:
        if camera_id not in self.cameras:
            self.load_cameras()
        return self.cameras.get(camera_id, f"camera {camera_id}")

    def person(self, person_id: int | None) -> str | None:
        if person_id is None:
            return None
        if person_id not in self.people:
            self.load_people()
        return self.people.get(person_id, f"person {person_id}")

    def camera_id(self, ref: str) -> int:
        if ref.isdigit():
            return int(ref)
        self.load_cameras()
        for camera_id, name in self.cameras.items():
            if name == ref:
                return camera_id
        raise CommandError(f"no camera named {ref!r}")

    def person_id(self, ref: str) -> int:
        if ref.isdigit():
            return int(ref)
        self.load_people()
        found = [pid for pid, name in self.people.items() if name == ref]
        if len(found) != 1:
            raise CommandError(f"{len(found) or 'no'} people named {ref!r}")
        return found[0]


def line(s: dict[str, Any], names: Names) -> str:
    seen = datetime.fromtimestamp(float(s["first_seen"])).strftime("%H:%M:%S")
    who = names.person(s.get("person_id"))
    person = f"[bold]{who}[/bold]" if who else "[bright_black]unknown[/bright_black]"
    distance = s.get("best_distance")
    extra = f"{s['frames']} frames" + (f", distance {distance:.2f}" if distance is not None else "")
    where = names.camera(int(s["camera_id"]))
    return f"{seen}  {where}  {person}  ({extra})  {s.get('worker_id') or ''}"


@app.command("tail")
@api_command
def tail(
    api: Api,
    person: Annotated[str | None, typer.Option(help="Only this person (id or name).")] = None,
    camera: Annotated[str | None, typer.Option(help="Only this camera (id or name).")] = None,
    unknown: Annotated[bool, typer.Option("--unknown", help="Only faces matching nobody.")] = False,
    updates: Annotated[
        bool, typer.Option("--updates", help="Also print updates of tracks already shown.")
    ] = False,
    count: Annotated[
        int | None, typer.Option(help="Stop after this many sightings.", min=1)
    ] = None,
) -> None:
    """New sightings as workers report them, live from the tenant's WebSocket (Ctrl-C to
    stop). With --json, each sighting event as one JSON line."""
    names = Names(api)
    person_id = names.person_id(person) if person else None
    camera_id = names.camera_id(camera) if camera else None
    shown: set[int] = set()
    printed = 0
    for message in messages(api):
        if message["type"] != "event" or message["kind"] != "sighting":
            continue
        s: dict[str, Any] = message["data"]
        if (
            (person_id is not None and s.get("person_id") != person_id)
            or (camera_id is not None and s.get("camera_id") != camera_id)
            or (unknown and s.get("known"))
            or (s["id"] in shown and not updates)
        ):
            continue
        shown.add(s["id"])
        if api.json:
            emit_json_line({**s, "person_name": names.person(s.get("person_id"))})
        else:
            out.print(line(s, names))
        printed += 1
        if count is not None and printed >= count:
            return
