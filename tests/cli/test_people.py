"""`facefleet people import` and `people enroll` against a real control plane, with the
shared fixture photos."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np

from tests.cli.conftest import Cli
from tests.fixtures.face_data import require_fixtures

SIX = [
    "alex_lacamoire",
    "barack_obama",
    "joe_biden",
    "kit_harington",
    "lin_manuel_miranda",
    "rose_leslie",
]


def people(cli: Cli) -> dict[str, int]:
    with cli.control.admin() as admin:
        items = admin.get("/v1/people", params={"limit": 1000}).json()["items"]
    return {p["name"]: p["face_count"] for p in items}


def test_import_enrolls_the_six_fixture_people_and_prints_the_summary(cli: Cli) -> None:
    folder = require_fixtures() / "faces" / "enroll"

    run = cli.run("people", "import", str(folder))

    assert run.code == 0, run.output
    assert "Traceback" not in run.output
    assert "6 people enrolled from 6 photos; 0 photos refused" in run.stdout
    for name in SIX:
        assert name in run.stdout
    assert "enrolled" in run.stderr  # the progress bar
    assert {name: people(cli)[name] for name in SIX} == dict.fromkeys(SIX, 1)

    # Again: every photo is already there, nothing is added twice.
    again = cli.run("people", "import", str(folder), "--json")
    assert again.code == 0, again.output
    summary = json.loads(again.stdout)
    assert (summary["enrolled_photos"], summary["skipped_photos"]) == (0, 6)
    assert {name: people(cli)[name] for name in SIX} == dict.fromkeys(SIX, 1)


def test_import_reports_a_non_image_and_a_no_face_photo_enrolls_the_rest_and_fails(
    cli: Cli, tmp_path: Path
) -> None:
    faces = require_fixtures() / "faces"
    folder = tmp_path / "people"
    (folder / "ada").mkdir(parents=True)
    shutil.copy(faces / "enroll" / "kit_harington.jpg", folder / "ada" / "portrait.jpg")
    (folder / "ada" / "notes.txt").write_text("not a photo\n")
    # A photo of nothing: a smooth gradient, no face in it.
    gradient = np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1))
    cv2.imwrite(str(folder / "ada" / "wall.png"), cv2.merge([gradient] * 3))
    shutil.copy(faces / "probe" / "rose_leslie_2.jpg", folder / "grace.jpg")
    (folder / ".DS_Store").write_bytes(b"\0\1")  # hidden: ignored

    run = cli.run("people", "import", str(folder))

    assert run.code == 1, run.output
    assert "Traceback" not in run.output
    assert "2 people enrolled from 2 photos; 2 photos refused" in run.stdout
    refused = run.stdout[run.stdout.index("refused photos:") :]
    assert "notes.txt:" in refused and "wall.png: no face found" in refused, refused
    assert ".DS_Store" not in run.output
    known = people(cli)
    assert (known["ada"], known["grace"]) == (1, 1)

    # The same as JSON: every refusal with its reason, exit code 1.
    again = cli.run("people", "import", str(folder), "--json")
    assert again.code == 1
    summary = json.loads(again.stdout)
    reasons = {Path(r["photo"]).name: r["reason"] for p in summary["people"] for r in p["refused"]}
    assert set(reasons) == {"notes.txt", "wall.png"}
    assert "no face found" in reasons["wall.png"]


def test_enroll_name_photos_refuses_a_photo_of_two_and_keeps_nobody_for_nothing(
    cli: Cli, tmp_path: Path
) -> None:
    probe = require_fixtures() / "faces" / "probe"

    run = cli.run(
        "people",
        "enroll",
        "Barack",
        str(probe / "barack_obama_2.jpg"),
        str(probe / "two_people.jpg"),
    )

    assert run.code == 1, run.output
    assert "1 people enrolled from 1 photos; 1 photos refused" in run.stdout
    assert "two_people.jpg: 2 faces found" in run.stdout
    assert people(cli)["Barack"] == 1

    # Every photo refused: the new person is not left behind empty.
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    none = cli.run("people", "enroll", "Nobody", str(empty), str(tmp_path / "missing.jpg"))
    assert none.code == 1
    assert "the file is empty" in none.stdout and "missing.jpg" in none.stdout
    assert "Nobody" not in people(cli)


def test_import_help_names_both_layouts(cli: Cli) -> None:
    run = cli.run("people", "import", "--help", key=None)
    assert run.code == 0
    text = " ".join(run.stdout.split())
    assert "one sub-folder per person" in text and "one photo per person" in text


def test_list_and_remove_people(cli: Cli) -> None:
    probe = require_fixtures() / "faces" / "probe"
    assert cli.run("people", "enroll", "Joe", str(probe / "joe_biden_2.jpg")).code == 0
    listed = json.loads(cli.run("people", "list", "--name", "Joe", "--json").stdout)
    # --name matches a part of the name, in any case.
    assert ("Joe", 1) in {(p["name"], p["face_count"]) for p in listed}
    assert all("joe" in p["name"].lower() for p in listed), listed

    asked = cli.run("people", "rm", "Joe")
    assert asked.code == 1 and "Pass --yes" in asked.stderr
    removed = cli.run("people", "rm", "Joe", "--yes")
    assert removed.code == 0, removed.output
    assert "Joe" not in people(cli)
    gone = cli.run("people", "rm", "Joe", "--yes")
    assert gone.code == 1 and "nobody is named 'Joe'" in gone.stderr
