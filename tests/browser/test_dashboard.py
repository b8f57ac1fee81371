"""The dashboard in Debian's chromium against a real fleet: a control plane process, worker
processes running the face pipeline on the fixture video, and an operator clicking through.

The tests are the steps of one scenario and run in order on one fleet: workers appear, one
is killed and its cameras move, another is drained from the UI, a person is enrolled from a
fixture photo and then seen on the stage camera, a viewer finds no controls, and a broken
connection is recovered. Each step leaves a screenshot in FACEFLEET_SCREENSHOT_DIR.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from facefleet import __version__
from facefleet.demo.video import make_demo_video
from tests.browser.conftest import REPO, Dashboard, Screenshots
from tests.fixtures.face_data import require_fixtures
from tests.fixtures.fleet import ControlPlane, WorkerProcess
from tests.fixtures.waiting import wait_for

PERSON = "Lin-Manuel Miranda"  # on stage in the fixture video
FAILOVER = 40_000  # ms: a lease TTL, the reaper, the other worker's next camera request
RECOGNITION = 120_000  # ms: gallery reload, tracks, the first report
DOCS_SCREENSHOT = REPO / "docs" / "images" / "dashboard-fleet.png"


@dataclass
class Fleet:
    control: ControlPlane
    cameras: dict[str, int]
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # "victim" / "survivor" -> worker id

    def start(self, worker_id: str) -> WorkerProcess:
        env = {"FACEFLEET_WORKER_CAPACITY": "2"}
        worker = WorkerProcess(worker_id, self.control, self.control.workdir, env=env).start()
        self.workers[worker_id] = worker
        return worker

    def holders(self) -> dict[str, str | None]:
        with self.control.admin() as admin:
            items = admin.get("/v1/cameras").json()["items"]
        return {c["name"]: c["lease"]["worker_id"] for c in items}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    workdir = tmp_path_factory.mktemp("browser-fleet")
    stage_video = require_fixtures() / "video" / "two_people_clip.mp4"
    yard_video = workdir / "yard.avi"
    make_demo_video(yard_video, seconds=4, fps=10)
    control = ControlPlane(workdir, f"sqlite+aiosqlite:///{workdir / 'facefleet.db'}")
    control.start()
    cameras = {}
    with control.admin() as admin:
        for name, video, fps, priority in (
            ("stage", stage_video, 5, 10),
            ("yard", yard_video, 2, 0),
        ):
            resp = admin.post(
                "/v1/cameras",
                json={
                    "name": name,
                    "source_url": f"file://{video}",
                    "target_fps": fps,
                    "priority": priority,
                },
            )
            assert resp.status_code == 201, resp.text
            cameras[name] = resp.json()["id"]
    running = Fleet(control, cameras)
    try:
        yield running
    finally:
        for worker in running.workers.values():
            worker.stop()
        control.stop()
        for worker in running.workers.values():
            assert "Traceback" not in worker.log(), worker.log()[-3000:]


@pytest.fixture(scope="module")
def dashboard(fleet: Fleet, browser: Any) -> Iterator[Dashboard]:
    board = Dashboard(fleet.control.url, browser, fleet.control.keys())
    yield board
    board.close()


@pytest.fixture(scope="module")
def page(dashboard: Dashboard) -> Page:
    """The admin's tab, kept signed in from step to step."""
    return dashboard.open()


def row(page: Page, worker_id: str) -> Locator:
    return page.locator(f"#workers tr[data-worker-id='{worker_id}']")


def camera_row(page: Page, name: str) -> Locator:
    return page.locator(f"#cameras tr[data-camera-name='{name}']")


def test_sign_in(dashboard: Dashboard, page: Page, screenshots: Screenshots) -> None:
    page.goto(f"{dashboard.url}/")
    page.fill("input[name=api-key]", "ff_admin_not-a-real-key")
    page.click("form[aria-label='sign in'] button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("invalid, revoked or expired API key")
    screenshots.take(page, "sign in refused")

    dashboard.sign_in(page, "admin")
    expect(page.locator("#role")).to_have_text("admin")
    expect(page.get_by_text("No worker has registered yet")).to_be_visible()
    key = page.evaluate("sessionStorage.getItem('facefleet.apiKey')")
    assert key == dashboard.keys["admin"]
    screenshots.take(page, "signed in, no worker yet")


def test_two_workers_appear_as_their_processes_start(
    fleet: Fleet, page: Page, screenshots: Screenshots
) -> None:
    fleet.start("alpha")
    expect(row(page, "alpha").locator(".badge").first).to_have_text("online", timeout=30_000)
    fleet.start("beta")
    expect(row(page, "beta").locator(".badge").first).to_have_text("online", timeout=30_000)

    # Both cameras held, each shown in its holder's row, with live fps and heartbeats.
    def all_held() -> dict[str, str | None] | None:
        held = fleet.holders()
        return held if all(held.values()) else None

    holders = wait_for(all_held, 30, "both cameras held")
    for camera, holder in holders.items():
        assert holder is not None
        expect(row(page, holder).locator("td.cameras")).to_contain_text(camera)
    for worker_id in ("alpha", "beta"):
        expect(row(page, worker_id).locator("td.age")).to_have_text(re.compile(r"now|\d+ s ago"))
        expect(row(page, worker_id)).to_contain_text(__version__)
    busy = {h for h in holders.values() if h}
    for worker_id in busy:
        expect(row(page, worker_id).locator("td.num")).to_have_text(
            re.compile(r"[1-9]\d*\.\d|0\.[1-9]"), timeout=20_000
        )
    shot = screenshots.take(page, "fleet with two workers")
    if os.environ.get("FACEFLEET_DOCS_SCREENSHOT"):
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, DOCS_SCREENSHOT)


def test_kill_9_moves_the_camera_to_the_other_worker(
    dashboard: Dashboard, fleet: Fleet, page: Page, screenshots: Screenshots
) -> None:
    holders = fleet.holders()
    victim = holders["yard"]
    assert victim is not None
    survivor = "beta" if victim == "alpha" else "alpha"
    fleet.roles.update(victim=victim, survivor=survivor)
    moved = [camera for camera, holder in holders.items() if holder == victim]

    fleet.workers[victim].signal(signal.SIGKILL)
    fleet.workers[victim].wait(10)

    expect(row(page, victim).locator(".badge").first).to_have_text("offline", timeout=FAILOVER)
    for camera in moved:
        expect(row(page, survivor).locator("td.cameras")).to_contain_text(camera, timeout=FAILOVER)
    expect(row(page, victim).locator("td.cameras")).to_have_text("none")
    screenshots.take(page, f"{victim} killed, its cameras on {survivor}")

    dashboard.go(page, "cameras")
    for camera in moved:
        expect(camera_row(page, camera).locator("td.holder")).to_have_text(survivor)
    screenshots.take(page, "cameras after the failover")


def test_drain_a_worker_from_the_ui(fleet: Fleet, page: Page, screenshots: Screenshots) -> None:
    victim, survivor = fleet.roles["victim"], fleet.roles["survivor"]
    fleet.start(victim)  # back under the same WORKER_ID, to take what is drained
    page.click("nav a[href='#/fleet']")
    expect(row(page, victim).locator(".badge").first).to_have_text("online", timeout=30_000)

    row(page, survivor).get_by_role("button", name="Drain").click()
    dialog = page.locator("dialog.confirm")
    expect(dialog).to_contain_text(f"Drain {survivor}?")
    screenshots.take(page, "drain asks for confirmation")
    dialog.get_by_role("button", name="Drain").click()

    expect(row(page, survivor).locator(".badge").first).to_have_text("draining")
    expect(row(page, survivor).locator(".badge").nth(1)).to_have_text("drain")
    expect(row(page, survivor).get_by_role("button", name="Undrain")).to_be_visible()
    for camera in fleet.cameras:
        expect(row(page, victim).locator("td.cameras")).to_contain_text(camera, timeout=FAILOVER)
    expect(row(page, survivor).locator("td.cameras")).to_have_text("none")
    screenshots.take(page, f"{survivor} drained, its cameras on {victim}")


def test_worker_detail_shows_history_and_runs_a_command(
    fleet: Fleet, page: Page, screenshots: Screenshots
) -> None:
    survivor = fleet.roles["survivor"]
    row(page, survivor).get_by_role("link", name=survivor).click()
    detail = page.locator(f".worker-detail[data-worker-id='{survivor}']")
    history = detail.locator("#history")
    for kind in ("registered", "camera_assigned", "draining", "camera_released"):
        expect(history).to_contain_text(kind)

    detail.locator("select[name=type]").select_option("reload_gallery")
    detail.get_by_role("button", name="Send command").click()
    command = detail.locator("#commands tbody tr").first
    expect(command).to_contain_text("reload_gallery")
    expect(command.locator(".badge")).to_have_text("acked", timeout=20_000)
    screenshots.take(page, f"worker {survivor}: history and commands")


def test_cameras_add_edit_disable_remove(
    dashboard: Dashboard, page: Page, screenshots: Screenshots
) -> None:
    dashboard.go(page, "cameras")
    page.get_by_role("button", name="Add camera").click()
    form = page.locator("form[aria-label='add a camera']")
    form.locator("input[name=name]").fill("porch")
    form.locator("input[name=source_url]").fill("rtsp://user:secret@cam.invalid/live")
    # A label no worker has: the camera waits, the fleet is left as it is.
    form.locator("input[name=required_labels]").fill("rooftop")
    form.get_by_role("button", name="Add camera").click()
    porch = camera_row(page, "porch")
    expect(porch.locator(".badge").first).to_have_text("unassigned")
    expect(porch).to_contain_text("rtsp://***@cam.invalid/live")

    porch.get_by_role("button", name="Edit").click()
    edit = page.locator("form[aria-label='edit porch']")
    edit.locator("input[name=priority]").fill("5")
    edit.get_by_role("button", name="Save").click()
    expect(porch.locator("td.num").nth(2)).to_have_text("5")
    expect(porch).to_contain_text("rtsp://***@cam.invalid/live")  # the source was left alone

    porch.get_by_role("button", name="Disable").click()
    page.locator("dialog.confirm").get_by_role("button", name="Disable").click()
    expect(porch.locator(".badge").first).to_have_text("disabled")
    screenshots.take(page, "cameras: porch added, edited, disabled")

    porch.get_by_role("button", name="Remove").click()
    page.locator("dialog.confirm").get_by_role("button", name="Remove").click()
    expect(porch).to_have_count(0)


def test_enroll_a_person_through_the_file_input(
    dashboard: Dashboard, page: Page, screenshots: Screenshots, tmp_path: Path
) -> None:
    faces = require_fixtures() / "faces"
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    dashboard.go(page, "people")
    page.fill("input[name=person-name]", PERSON)
    page.set_input_files(
        "input[name=enroll-photos]",
        [faces / "enroll" / "lin_manuel_miranda.png", faces / "probe" / "two_people.jpg", notes],
    )

    outcome = page.locator("#enroll-outcome")
    # The first enrollment loads the face models in the control plane.
    expect(outcome).to_contain_text(
        f"Enrolled 1 photo(s) of {PERSON}: lin_manuel_miranda.png", timeout=90_000
    )
    expect(outcome.locator("li[data-file='two_people.jpg']")).to_contain_text("2 faces found")
    expect(outcome.locator("li[data-file='notes.txt']")).to_contain_text("notes.txt")
    person = page.locator(f"li.person[data-person-name='{PERSON}']")
    expect(person).to_contain_text("1 face(s)")
    expect(person.locator("img.thumb")).to_be_visible()
    screenshots.take(page, "person enrolled, refused photos with reasons")

    # A second photo dragged onto the person, then that face removed again.
    photo = (faces / "enroll" / "lin_manuel_miranda.png").read_bytes()
    dropped = page.evaluate_handle(
        """(bytes) => {
            const data = new DataTransfer();
            const file = new File([new Uint8Array(bytes)], "dragged.png", { type: "image/png" });
            data.items.add(file);
            return data;
        }""",
        list(photo),
    )
    person.locator("label.dropzone").dispatch_event("drop", {"dataTransfer": dropped})
    expect(person).to_contain_text("2 face(s)")
    face = person.locator("figure.face", has_text="dragged.png")
    face.get_by_role("button", name="Remove this face").click()
    page.locator("dialog.confirm").get_by_role("button", name="Remove face").click()
    expect(person).to_contain_text("1 face(s)")
    expect(person.locator("figure.face")).to_have_count(1)


def test_a_sighting_of_the_person_appears_in_the_feed(
    dashboard: Dashboard, page: Page, screenshots: Screenshots
) -> None:
    dashboard.go(page, "sightings")
    seen = page.locator(f"#sightings li[data-person='{PERSON}']").first
    expect(seen).to_be_visible(timeout=RECOGNITION)
    expect(seen).to_contain_text("stage")
    expect(seen.locator("img.crop")).to_be_visible()
    screenshots.take(page, "sightings: the enrolled person seen on stage")

    page.locator("select[name=person]").select_option(label=PERSON)
    cards = page.locator("#sightings li.sighting")
    expect(cards.first).to_be_visible()
    people = {c.get_attribute("data-person") for c in cards.all()}
    assert people == {PERSON}, people
    page.locator("select[name=person]").select_option(label="anyone")
    lin = page.locator(f"#sightings li[data-person='{PERSON}']")
    page.locator("select[name=camera]").select_option(label="yard")
    expect(lin).to_have_count(0)
    page.locator("select[name=camera]").select_option(label="stage")
    expect(lin.first).to_be_visible()
    page.fill("input[name=since]", "2099-01-01T00:00")
    expect(page.get_by_text("No sighting matches these filters")).to_be_visible()
    page.fill("input[name=since]", "")
    expect(lin.first).to_be_visible()
    page.locator("select[name=camera]").select_option(label="any camera")
    page.check("input[name=unknown]")
    expect(lin).to_have_count(0)
    screenshots.take(page, "sightings: unknown faces only")
    page.uncheck("input[name=unknown]")


def test_overview_counts_and_live_chart(
    dashboard: Dashboard, fleet: Fleet, page: Page, screenshots: Screenshots
) -> None:
    dashboard.go(page, "overview")
    counts = page.locator("#worker-counts")
    expect(counts.locator("li[data-status=online] strong")).to_have_text("1")
    expect(counts.locator("li[data-status=draining] strong")).to_have_text("1")
    expect(page.locator("#camera-counts")).to_contain_text("2 in all")
    expect(page.locator(".chart polyline.fps")).to_have_count(1, timeout=15_000)
    # The sighting of the step before is in the last minute's count.
    expect(page.locator(".chart .key.spm")).to_have_text(
        re.compile(r"sightings per minute: [1-9]"), timeout=15_000
    )
    screenshots.take(page, "overview")


def test_a_viewer_sees_no_controls_and_the_api_refuses(
    dashboard: Dashboard, fleet: Fleet, screenshots: Screenshots
) -> None:
    viewer = dashboard.open()
    dashboard.sign_in(viewer, "viewer")
    expect(viewer.locator("#role")).to_have_text("viewer · read only")
    victim = fleet.roles["victim"]
    expect(row(viewer, victim)).to_be_visible()
    expect(viewer.locator("#workers button")).to_have_count(0)
    expect(viewer.get_by_role("columnheader", name="Actions")).to_have_count(0)
    screenshots.take(viewer, "viewer: fleet without controls")

    dashboard.go(viewer, "cameras")
    expect(camera_row(viewer, "stage")).to_be_visible()
    expect(viewer.locator("main button")).to_have_count(0)
    dashboard.go(viewer, "people")
    expect(viewer.locator(f"li.person[data-person-name='{PERSON}'] img.thumb")).to_be_visible()
    expect(viewer.locator("main button, main input[type=file]")).to_have_count(0)
    dashboard.go(viewer, f"workers/{victim}")
    expect(viewer.locator("#history")).to_contain_text("registered")
    expect(viewer.locator("main button, main form")).to_have_count(0)
    screenshots.take(viewer, "viewer: worker detail without controls")

    # The controls are hidden, and the API refuses anyway.
    forced = viewer.evaluate(
        """async (workerId) => {
            const key = sessionStorage.getItem("facefleet.apiKey");
            const resp = await fetch(`/v1/workers/${workerId}/drain`, {
                method: "POST", headers: { Authorization: `Bearer ${key}` } });
            return { status: resp.status, body: await resp.json() };
        }""",
        victim,
    )
    assert forced["status"] == 403, forced
    assert forced["body"]["error"] == "Forbidden" and "admin key" in forced["body"]["detail"]
    with fleet.control.admin() as admin:
        assert admin.get(f"/v1/workers/{victim}").json()["status"] == "online"


def test_a_lost_connection_is_shown_and_recovered(
    dashboard: Dashboard, fleet: Fleet, screenshots: Screenshots
) -> None:
    """The page's WebSocket goes through a proxy in the browser that the test can cut."""
    sockets: list[tuple[WebSocketRoute, WebSocketRoute]] = []

    def proxy(ws: WebSocketRoute) -> None:
        sockets.append((ws, ws.connect_to_server()))

    page = dashboard.open()
    page.route_web_socket(re.compile(r"/v1/workers/ws/"), proxy)
    dashboard.sign_in(page, "admin")
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-snapshots", "1")
    survivor = fleet.roles["survivor"]
    expect(row(page, survivor).locator(".badge").first).to_have_text("draining")

    # The network drops; meanwhile the survivor is undrained. Resuming from the last
    # sequence number replays that event: no new snapshot is needed.
    client, server = sockets[-1]
    client.close(code=1012, reason="network dropped")
    server.close()
    with fleet.control.admin() as admin:
        assert admin.post(f"/v1/workers/{survivor}/undrain").status_code == 200
    expect(page.locator("#connection-banner")).to_contain_text("Connection lost")
    screenshots.take(page, "connection lost")
    expect(connection).to_have_attribute("data-status", "live")
    expect(page.locator("#connection-banner")).to_have_count(0)
    assert len(sockets) == 2 and "since=" in sockets[1][0].url, [s[0].url for s in sockets]
    expect(row(page, survivor).locator(".badge").first).to_have_text("online")
    expect(connection).to_have_attribute("data-snapshots", "1")

    # 4009: the server cannot replay what was missed; the page starts from a new snapshot.
    client, server = sockets[-1]
    client.close(code=4009, reason="events were missed")
    server.close()
    expect(connection).to_have_attribute("data-snapshots", "2")
    expect(connection).to_have_attribute("data-status", "live")
    assert len(sockets) == 3 and "since=" not in sockets[2][0].url, [s[0].url for s in sockets]
    expect(row(page, survivor).locator(".badge").first).to_have_text("online")
    screenshots.take(page, "recovered with a new snapshot after 4009")


def test_camera_processing_states_are_shown_as_the_control_plane_reports_them(
    dashboard: Dashboard, fleet: Fleet, screenshots: Screenshots
) -> None:
    """The control plane's own processing states, from its snapshot and its camera_state
    events: the stage camera streams; a camera nobody can open is shown failing, with the
    error its worker reported, and counted as not processed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connections are refused
    page = dashboard.open()
    dashboard.sign_in(page, "admin")
    dashboard.go(page, "cameras")
    row_stage = camera_row(page, "stage")
    expect(row_stage.locator(".badge").first).to_have_text("streaming", timeout=FAILOVER)
    # Frames per second as the holder reports them: a positive number.
    expect(row_stage.locator("td.num").nth(1)).to_have_text(re.compile(r"^(0\.[1-9]|[1-9])"))
    expect(row_stage.locator("td.holder")).to_have_text(fleet.holders()["stage"] or "")

    with fleet.control.admin() as admin:
        created = admin.post(
            "/v1/cameras",
            json={"name": "gate", "source_url": f"rtsp://127.0.0.1:{port}/gone", "target_fps": 2},
        )
        assert created.status_code == 201, created.text
        gate = created.json()["id"]
    try:
        row_gate = camera_row(page, "gate")
        expect(row_gate.locator(".badge").first).to_have_text("failing", timeout=FAILOVER)
        expect(row_gate.locator("td.error-text")).not_to_be_empty()
        screenshots.take(page, "cameras with processing states")
        dashboard.go(page, "overview")
        expect(page.locator("#camera-counts")).to_contain_text("1 not processed")
        expect(page.locator("#camera-counts")).to_contain_text("gate")
    finally:
        with fleet.control.admin() as admin:
            assert admin.delete(f"/v1/cameras/{gate}").status_code == 204


def test_no_api_key_reaches_the_control_planes_log(dashboard: Dashboard, fleet: Fleet) -> None:
    # The dashboard's WebSocket offers its key as a subprotocol, not in the URL.
    log = fleet.control.log()
    assert "WebSocket /v1/workers/ws/" in log
    for role, key in dashboard.keys.items():
        assert key not in log, f"the {role} key is in the control plane's log"
