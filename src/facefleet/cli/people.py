"""facefleet people list | enroll | import | rm.

Photos are sent one per request, so one refused photo (no face, two faces, not an image)
is reported with the API's reason while the others are enrolled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from facefleet.cli.client import Api, ApiFailure, CommandError, api_command, confirmed, err, out

app = typer.Typer(
    help="The face gallery: enroll people from photos, list, remove.", no_args_is_help=True
)


@dataclass
class Refused:
    photo: str
    reason: str


@dataclass
class PersonResult:
    name: str
    person_id: int | None = None
    enrolled: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


def find_person(api: Api, name: str) -> dict[str, Any] | None:
    """The person with exactly this name, if any."""
    found = [p for p in api.every("/v1/people", q=name) if p["name"] == name]
    if len(found) > 1:
        ids = ", ".join(str(p["id"]) for p in found)
        raise CommandError(f"{len(found)} people are named {name!r} (ids {ids}): rename one")
    return found[0] if found else None


def _reason(photo: Path, message: str) -> str:
    """The message without the photo's name in front: the summary names it already."""
    for prefix in (f"{photo}: ", f"{photo.name}: "):
        message = message.removeprefix(prefix)
    return message


def enroll_person(
    api: Api, name: str, photos: list[Path], progress: Progress, task: Any
) -> PersonResult:
    """Enroll photos of one person, creating the person when new. Photos already enrolled
    under the same file name are skipped, so running an import again adds only what is new.
    A new person none of whose photos was accepted is removed again."""
    result = PersonResult(name)
    person = find_person(api, name)
    created = person is None
    if person is None:
        person = api.post("/v1/people", {"name": name})
        known: set[str] = set()
    else:
        detail = api.get(f"/v1/people/{person['id']}")
        known = {f["source_name"] for f in detail["faces"]}
    result.person_id = person["id"]
    for photo in photos:
        progress.update(task, description=f"{name}: {photo.name}")
        if photo.name in known:
            result.skipped.append(str(photo))
        else:
            try:
                api.upload(f"/v1/people/{person['id']}/faces", photo)
                result.enrolled.append(str(photo))
            except ApiFailure as exc:
                if exc.status >= 500 or exc.status in (401, 403):
                    raise
                result.refused.append(Refused(str(photo), _reason(photo, exc.detail)))
            except CommandError as exc:
                result.refused.append(Refused(str(photo), _reason(photo, exc.message)))
        progress.advance(task)
    if created and not result.enrolled:
        api.delete(f"/v1/people/{person['id']}")
        result.person_id = None
    return result


def run_enrollment(api: Api, plan: list[tuple[str, list[Path]]]) -> None:
    """Enroll every (person, photos) of the plan with a progress bar, print the summary,
    and exit 1 when any photo was refused."""
    total = sum(len(photos) for _, photos in plan)
    results: list[PersonResult] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=api.json,
    ) as progress:
        task = progress.add_task("enrolling", total=total)
        for name, photos in plan:
            results.append(enroll_person(api, name, photos, progress, task))
        progress.update(task, description="enrolled")
    refused = [r for result in results for r in result.refused]
    summary = {
        "people": [asdict(r) for r in results],
        "enrolled_people": sum(1 for r in results if r.enrolled),
        "enrolled_photos": sum(len(r.enrolled) for r in results),
        "skipped_photos": sum(len(r.skipped) for r in results),
        "refused_photos": len(refused),
    }
    api.emit(summary, lambda: print_summary(results))
    if refused:
        raise typer.Exit(1)


def print_summary(results: list[PersonResult]) -> None:
    table = Table(title="enrollment", title_justify="left")
    table.add_column("person")
    table.add_column("id", justify="right")
    table.add_column("enrolled", justify="right")
    table.add_column("already there", justify="right")
    table.add_column("refused", justify="right")
    for r in results:
        table.add_row(
            r.name,
            str(r.person_id) if r.person_id is not None else "-",
            str(len(r.enrolled)),
            str(len(r.skipped)),
            f"[red]{len(r.refused)}[/red]" if r.refused else "0",
        )
    out.print(table)
    people = sum(1 for r in results if r.enrolled)
    photos = sum(len(r.enrolled) for r in results)
    refused = [x for r in results for x in r.refused]
    out.print(f"{people} people enrolled from {photos} photos; {len(refused)} photos refused")
    if refused:
        out.print("[red]refused photos:[/red]")
        for x in refused:
            out.print(f"  {x.photo}: {x.reason}")


def folder_plan(folder: Path) -> list[tuple[str, list[Path]]]:
    """Who is in a folder: each sub-folder is a person (its files are their photos) and each
    file directly in the folder is a person named after the file (``ada.jpg`` is Ada's)."""
    if not folder.is_dir():
        raise CommandError(f"{folder} is not a folder")
    plan: list[tuple[str, list[Path]]] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            photos = sorted(
                p for p in entry.iterdir() if p.is_file() and not p.name.startswith(".")
            )
            if photos:
                plan.append((entry.name, photos))
        elif entry.is_file():
            plan.append((entry.stem, [entry]))
    if not plan:
        raise CommandError(f"{folder} holds no photo")
    return plan


@app.command("enroll")
@api_command
def enroll(
    api: Api,
    name: Annotated[str, typer.Argument(help="The person's name (created when new).")],
    photos: Annotated[list[Path], typer.Argument(help="Photos showing this person's face alone.")],
) -> None:
    """Enroll photos of one person. Each refused photo is reported with its reason, the
    others are enrolled; the exit code is 1 when any was refused."""
    run_enrollment(api, [(name, photos)])


@app.command("import")
@api_command
def import_folder(
    api: Api,
    folder: Annotated[Path, typer.Argument(help="A folder of people (see above).")],
) -> None:
    """Enroll everyone in a folder. Two layouts, which may be mixed: one sub-folder per
    person holding their photos (FOLDER/ada/1.jpg, FOLDER/ada/2.png), or one photo per
    person named after them (FOLDER/ada.jpg). Hidden files are ignored; photos already
    enrolled under the same file name are skipped. The summary lists every refused photo
    with its reason; the exit code is 1 when any was refused."""
    run_enrollment(api, folder_plan(folder))


@app.command("list")
@api_command
def list_people(
    api: Api,
    name: Annotated[str | None, typer.Option("--name", help="Part of the name.")] = None,
) -> None:
    """Everyone enrolled, with how many faces each has."""
    people = list(api.every("/v1/people", q=name))

    def render() -> None:
        table = Table(title=f"{len(people)} people", title_justify="left")
        table.add_column("id", justify="right")
        table.add_column("name")
        table.add_column("faces", justify="right")
        for p in people:
            table.add_row(str(p["id"]), p["name"], str(p["face_count"]))
        out.print(table)

    api.emit(people, render)


@app.command("rm")
@api_command
def remove(
    api: Api,
    person: Annotated[str, typer.Argument(help="The person's id or exact name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove a person and every face of theirs (past sightings stay, without a name)."""
    found = api.get(f"/v1/people/{person}") if person.isdigit() else find_person(api, person)
    if found is None:
        raise CommandError(f"nobody is named {person!r}")
    confirmed(f"Remove {found['name']!r} and {found['face_count']} face(s)?", yes)
    api.delete(f"/v1/people/{found['id']}")
    api.emit(
        {"removed": found["id"], "name": found["name"]},
        lambda: out.print(f"removed {found['name']!r}"),
    )
