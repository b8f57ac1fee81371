"""The local commands: the dashboard URL comes first, tenants are created as before."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.cli.conftest import Cli
from tests.fixtures.live_server import free_port
from tests.fixtures.waiting import wait_for


def test_serve_names_the_dashboard_first(cli: Cli) -> None:
    first = cli.control.log().splitlines()[0]
    assert first == f"facefleet dashboard: {cli.control.url}/", first
    page = httpx.get(f"{cli.control.url}/")
    assert page.status_code == 200 and "/ui/app.js" in page.text


def test_demo_prints_the_dashboard_url_before_anything_else(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_")}
    env.update(FACEFLEET_DATA_DIR=str(tmp_path / "data"), FACEFLEET_PORT=str(port), COLUMNS="200")
    # A session of its own: whatever the demo started can be ended with it.
    with subprocess.Popen(
        [sys.executable, "-m", "facefleet", "demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=tmp_path,
        text=True,
        start_new_session=True,
    ) as demo:
        try:
            assert demo.stdout is not None
            first = demo.stdout.readline()
            # Ctrl-C once its control plane runs, as a user would.
            wait_for(lambda: healthy(port), 60, "the demo's control plane")
            demo.send_signal(signal.SIGINT)
            demo.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(demo.pid, signal.SIGKILL)
    assert first.startswith(f"facefleet dashboard: http://127.0.0.1:{port}/ "), first
    assert "default-tenant-keys.json" in first
    assert demo.returncode == 0


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_tenants_create_prints_keys_that_work(cli: Cli) -> None:
    # Local, as before: it writes to the database FACEFLEET_DATABASE_URL names.
    done = subprocess.run(
        [sys.executable, "-m", "facefleet", "tenants", "create", "acme", "--json"],
        capture_output=True,
        text=True,
        env=cli.env(FACEFLEET_DATABASE_URL=cli.control.database_url),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert set(created["keys"]) == {"admin", "worker", "viewer"}
    me = httpx.get(
        f"{cli.control.url}/v1/whoami",
        headers={"Authorization": f"Bearer {created['keys']['admin']}"},
    ).json()
    assert (me["tenant_name"], me["role"]) == ("acme", "admin")
    again = subprocess.run(
        [sys.executable, "-m", "facefleet", "tenants", "create", "acme"],
        capture_output=True,
        text=True,
        env=cli.env(FACEFLEET_DATABASE_URL=cli.control.database_url),
        timeout=60,
    )
    assert again.returncode == 1, again.stderr
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
