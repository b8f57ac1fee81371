"""schemathesis against the live control plane on PostgreSQL, as each role: requests
generated from the OpenAPI schema (valid and invalid ones), with no 5xx, no response that
breaks its schema, no undocumented status, no invalid input accepted and a correct ``Allow``
on every 405. Deterministic (schemathesis's deterministic generation), so a run is repeatable
in CI; bounded to about two minutes in all."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facefleet.api.app import create_app
from facefleet.api.security import Role
from tests.fixtures.harness import Tenant, make_settings
from tests.fixtures.live_server import LiveServer, live_server
from tests.fixtures.services import create_pg_database, drop_pg_database

pytestmark = pytest.mark.timeout(420)

# Per operation and role: about 75 s for the three roles on a developer machine.
MAX_EXAMPLES = int(os.environ.get("FACEFLEET_FUZZ_EXAMPLES", "20"))
SUMMARY = re.compile(r"(\d+) generated, (\d+) passed")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "missing_required_header",
        "unsupported_method",
        "allow_header_conformance",
        "ignored_auth",
    ]
)
WORKER_ID = f"fuzz-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    url = create_pg_database()
    try:
        settings = make_settings(tmp_path_factory.mktemp("fuzz"), url, run_background=True)
        with live_server(create_app(settings)) as running:
            yield running
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def tenant(server: LiveServer) -> Tenant:
    """A tenant with something in it: cameras, a person, a registered worker."""
    tenant = server.new_tenant()
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        for i in range(3):
            resp = http.post(
                "/v1/cameras",
                json={"name": f"cam-{i}", "source_url": f"rtsp://10.0.0.{i}/s"},
                headers=tenant.headers(),
            )
            assert resp.status_code == 201, resp.text
        resp = http.post("/v1/people", json={"name": "Ada"}, headers=tenant.headers())
        assert resp.status_code == 201, resp.text
    return tenant


def session_of(server: LiveServer, tenant: Tenant) -> str:
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        resp = http.post(
            "/v1/workers/register",
            json={"worker_id": WORKER_ID, "capacity": 2},
            headers=tenant.headers(Role.worker),
        )
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["session_token"]
        return token


def spare_key_id(server: LiveServer, tenant: Tenant) -> int:
    """A key of the tenant's that the run may revoke and rotate: never the one it runs with."""
    with httpx.Client(base_url=server.base_url, timeout=10) as http:
        resp = http.post("/v1/keys", json={"role": "viewer"}, headers=tenant.headers())
        assert resp.status_code == 201, resp.text
        key_id: int = resp.json()["id"]
        return key_id


def run_schemathesis(server: LiveServer, headers: dict[str, str], config: Path) -> str:
    command = [
        str(Path(sys.executable).with_name("st")),
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{server.base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--phases",
        "examples,coverage,fuzzing",
        "--workers",
        "1",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
        "--max-failures",
        "20",
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    # The presence stream answers until the client leaves: every call would last the
    # request timeout (its behaviour is tested in test_presence.py).
    command += ["--exclude-path-regex", "/presence$"]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, check=False, cwd=config.parent
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-20_000:]
    return output


@pytest.mark.parametrize("role", [Role.admin, Role.viewer, Role.worker])
def test_generated_requests(server: LiveServer, tenant: Tenant, role: Role, tmp_path: Path) -> None:
    headers = tenant.headers(role)
    config = tmp_path / "schemathesis.toml"
    # A camera request may wait up to a minute for a free camera: not in a bounded run.
    lines = ["[parameters]", '"query.wait" = 0']
    # Revoking or rotating the run's own key would turn the rest of it into 401s.
    lines.append(f'"path.key_id" = {spare_key_id(server, tenant)}')
    if role is Role.worker:
        # Worker routes act as the worker whose session the key sends.
        headers["X-Worker-Session"] = session_of(server, tenant)
        lines.append(f'"path.worker_id" = "{WORKER_ID}"')
    config.write_text("\n".join(lines) + "\n")
    output = run_schemathesis(server, headers, config)
    summary = SUMMARY.search(output)
    assert summary is not None, output[-20_000:]
    generated, passed = int(summary[1]), int(summary[2])
    assert generated == passed and generated > 1000, output[-20_000:]
