"""The API commands of the CLI against a real control plane: output that parses, live
commands over the WebSocket, and errors that exit 1 with the API's own message."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.fixtures.live_server import free_port


class SimulatedWorker:
    """A worker speaking the HTTP API, enough to hold a camera and report sightings."""

    def __init__(self, cli: Cli, worker_id: str, **body: Any) -> None:
        self.http = httpx.Client(base_url=cli.control.url, timeout=10)
        key = cli.control.keys()["worker"]
        resp = self.http.post(
            "/v1/workers/register",
            json={"worker_id": worker_id, "hostname": "cli-test", "version": "9.9", **body},
            headers={"Authorization": f"Bearer {key}"},
        )
        resp.raise_for_status()
        self.worker_id = worker_id
        self.http.headers.update(
            {"Authorization": f"Bearer {key}", "X-Worker-Session": resp.json()["session_token"]}
        )

    def take_camera(self) -> tuple[int, int]:
        resp = self.http.post(f"/v1/workers/{self.worker_id}/camera/request")
        resp.raise_for_status()
        assignment = resp.json()["assignment"]
        assert assignment is not None, resp.json()
        return assignment["camera_id"], assignment["epoch"]

    def sighting(self, camera_id: int, epoch: int, person_id: int | None) -> None:
        now = time.time()
        resp = self.http.post(
            f"/v1/workers/{self.worker_id}/sightings",
            json={
                "camera_id": camera_id,
                "epoch": epoch,
                "sightings": [
                    {
                        "track_id": uuid.uuid4().hex,
                        "person_id": person_id,
                        "first_seen": now - 2,
                        "last_seen": now,
                        "best_distance": 0.31,
                        "frames": 12,
                    }
                ],
            },
        )
        resp.raise_for_status()


@pytest.fixture
def simulate(cli: Cli) -> Iterator[Callable[..., SimulatedWorker]]:
    started: list[SimulatedWorker] = []

    def start(worker_id: str, **body: Any) -> SimulatedWorker:
        started.append(SimulatedWorker(cli, worker_id, **body))
        return started[-1]

    yield start
    for worker in started:
        worker.http.close()


def test_workers_list_json_parses(cli: Cli, simulate: Callable[..., SimulatedWorker]) -> None:
    simulate("lister", labels=["gpu"])

    run = cli.run("workers", "list", "--json")

    assert run.code == 0, run.output
    workers = json.loads(run.stdout)
    mine = next(w for w in workers if w["worker_id"] == "lister")
    assert (mine["status"], mine["labels"], mine["version"]) == ("online", ["gpu"], "9.9")
    table = cli.run("workers", "list", "--label", "gpu")
    assert table.code == 0 and "lister" in table.stdout and "online" in table.stdout


def test_the_keys_file_of_the_local_data_dir_is_the_fallback(cli: Cli) -> None:
    # No --api-key and no FACEFLEET_API_KEY: the admin key of ./data/default-tenant-keys.json.
    run = cli.run("workers", "list", "--json", key=None, cwd=cli.control.workdir)
    assert run.code == 0, run.output
    assert isinstance(json.loads(run.stdout), list)
    # FACEFLEET_API_URL and FACEFLEET_API_KEY stand for the options.
    env = cli.run(
        "cameras",
        "list",
        "--json",
        key=None,
        url=None,
        FACEFLEET_API_KEY=cli.control.keys()["viewer"],
    )
    assert env.code == 0, env.output
    elsewhere = cli.run("workers", "list", key=None, cwd=cli.control.workdir / "data")
    assert elsewhere.code == 1
    assert "no API key: pass --api-key, set FACEFLEET_API_KEY" in elsewhere.stderr


def test_cameras_add_list_edit_rm(cli: Cli) -> None:
    added = cli.run(
        "cameras",
        "add",
        "dock",
        "rtsp://user:secret@10.1.2.3/live",
        "--fps",
        "4",
        "--label",
        "site-a",
        "--json",
    )
    assert added.code == 0, added.output
    camera = json.loads(added.stdout)
    assert camera["source_url"] == "rtsp://***@10.1.2.3/live" and camera["target_fps"] == 4

    edited = cli.run("cameras", "edit", "dock", "--disable", "--priority", "7", "--no-labels")
    assert edited.code == 0, edited.output
    listed = json.loads(cli.run("cameras", "list", "--json").stdout)
    dock = next(c for c in listed if c["name"] == "dock")
    assert (dock["enabled"], dock["priority"], dock["required_labels"]) == (False, 7, [])
    table = cli.run("cameras", "list")
    assert "dock" in table.stdout and "disabled" in table.stdout and "secret" not in table.stdout

    unconfirmed = cli.run("cameras", "rm", str(camera["id"]))
    assert unconfirmed.code == 1 and "Pass --yes" in unconfirmed.stderr
    removed = cli.run("cameras", "rm", "dock", "--yes")
    assert removed.code == 0, removed.output
    assert "dock" not in cli.run("cameras", "list").stdout


def test_drain_undrain_and_shutdown(cli: Cli, simulate: Callable[..., SimulatedWorker]) -> None:
    simulate("steered")

    drained = cli.run("workers", "drain", "steered")
    assert (drained.code, drained.stdout.strip()) == (0, "steered is draining")
    undrained = cli.run("workers", "undrain", "steered", "--json")
    assert undrained.code == 0 and json.loads(undrained.stdout)["status"] == "online"
    stopped = cli.run("workers", "shutdown", "steered", "--yes", "--reason", "maintenance")
    assert (stopped.code, stopped.stdout.strip()) == (0, "steered is stopping")
    with cli.control.admin() as admin:
        history = admin.get("/v1/workers/steered").json()["history"]
    assert any(e["detail"].get("reason") == "maintenance" for e in history), history


@pytest.mark.parametrize(
    ("args", "key", "message"),
    [
        (["workers", "drain", "ghost"], "admin", "worker 'ghost' is not registered"),
        (["cameras", "add", "cam", "ftp://host/x"], "admin", "unsupported scheme 'ftp'"),
        (
            ["cameras", "add", "cam", "rtsp://host/x", "--fps", "99"],
            "admin",
            "target_fps: Input should be less than or equal to 60",
        ),
        (["cameras", "add", "cam", "rtsp://host/x"], "viewer", "needs an admin key"),
        (["cameras", "edit", "nowhere", "--fps", "2"], "admin", "no camera named 'nowhere'"),
        (["workers", "list"], "ff_admin_not-a-key", "invalid, revoked or expired API key"),
        (["people", "enroll", "x", "photo.jpg"], "viewer", "needs an admin key"),
        (["sightings", "tail"], "worker", "a worker key cannot watch this tenant's events"),
    ],
)
def test_errors_exit_1_with_the_api_message(
    cli: Cli, args: list[str], key: str, message: str
) -> None:
    run = cli.run(*args, key=key)
    assert run.code == 1, run.output
    assert message in run.stderr, run.stderr
    assert "Traceback" not in run.output
    as_json = cli.run(*args, "--json", key=key)
    assert as_json.code == 1
    assert message in json.loads(as_json.stderr)["detail"]


def test_duplicate_and_unreachable(cli: Cli) -> None:
    assert cli.run("cameras", "add", "twin", "rtsp://host/a").code == 0
    twin = cli.run("cameras", "add", "twin", "rtsp://host/b")
    assert twin.code == 1 and "a camera named 'twin' already exists" in twin.stderr
    nowhere = cli.run("workers", "list", url=f"http://127.0.0.1:{free_port()}")
    assert nowhere.code == 1
    assert "cannot reach the control plane at http://127.0.0.1:" in nowhere.stderr
    assert "Traceback" not in nowhere.output


def read_json_lines(process: subprocess.Popen[str], want: int, timeout: float) -> list[Any]:
    assert process.stdout is not None
    lines: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(lines) < want and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
    return lines


def test_workers_watch_streams_the_snapshot_then_events(
    cli: Cli, simulate: Callable[..., SimulatedWorker]
) -> None:
    with cli.popen("workers", "watch", "--json") as watch:
        try:
            (snapshot,) = read_json_lines(watch, 1, 20)
            assert snapshot["type"] == "snapshot"
            assert "workers" in snapshot["data"] and "cameras" in snapshot["data"]
            simulate("watched")
            seen: list[Any] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not any(
                e.get("kind") == "registered" and e["data"]["worker_id"] == "watched" for e in seen
            ):
                seen += read_json_lines(watch, 1, 20)
            assert any(e.get("kind") == "registered" for e in seen), seen
            assert all(b["seq"] > a["seq"] for a, b in zip([snapshot, *seen], seen, strict=False))
        finally:
            watch.kill()


def test_sightings_tail_prints_sightings_live(
    cli: Cli, simulate: Callable[..., SimulatedWorker]
) -> None:
    with cli.control.admin() as admin:
        admin.post("/v1/cameras", json={"name": "gate", "source_url": "rtsp://gate/live"})
        person = admin.post("/v1/people", json={"name": "Ada Tail"}).json()
    worker = simulate("reporter", capacity=8)
    camera_id, epoch = worker.take_camera()
    with cli.control.admin() as admin:
        camera_name = admin.get(f"/v1/cameras/{camera_id}").json()["name"]

    with cli.popen(
        "sightings", "tail", "--camera", str(camera_id), "--count", "2", "--json"
    ) as tail:
        try:
            # Keep reporting until the tail has seen two (it may connect after the first ones).
            deadline = time.monotonic() + 30
            while tail.poll() is None and time.monotonic() < deadline:
                worker.sighting(camera_id, epoch, person["id"])
                worker.sighting(camera_id, epoch, None)
                time.sleep(0.5)
            out, errors = tail.communicate(timeout=10)
        finally:
            tail.kill()
    assert tail.returncode == 0, errors
    lines = [json.loads(line) for line in out.splitlines()]
    assert len(lines) == 2
    assert {s["camera_id"] for s in lines} == {camera_id}
    assert {s["person_name"] for s in lines} <= {"Ada Tail", None}

    # Only unknown faces, as text.
    with cli.popen("sightings", "tail", "--unknown", "--count", "1") as unknown:
        try:
            deadline = time.monotonic() + 30
            while unknown.poll() is None and time.monotonic() < deadline:
                worker.sighting(camera_id, epoch, person["id"])
                worker.sighting(camera_id, epoch, None)
                time.sleep(0.5)
            text, errors = unknown.communicate(timeout=10)
        finally:
            unknown.kill()
    assert unknown.returncode == 0, errors
    assert camera_name in text and "unknown" in text and "Ada Tail" not in text
