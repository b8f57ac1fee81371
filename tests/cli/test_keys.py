"""`facefleet keys` against a real control plane: create prints the key once, list never
shows it, rotate and revoke take effect at once, errors exit 1 with the API's message."""

from __future__ import annotations

import json

import httpx

from tests.cli.conftest import Cli


def works(cli: Cli, key: str) -> bool:
    resp = httpx.get(
        f"{cli.control.url}/v1/whoami", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert resp.status_code in (200, 401), resp.text
    return resp.status_code == 200


def test_create_list_rotate_revoke(cli: Cli) -> None:
    run = cli.run("keys", "create", "viewer", "--name", "wall screen", "--ttl", "90d")
    assert run.code == 0, run.output
    key = next(word for word in run.stdout.split() if word.startswith("ff_viewer_"))
    assert "never shown again" in run.stdout and "expires" in run.stdout
    assert works(cli, key)

    listed = cli.run("keys", "list", "--json")
    assert listed.code == 0, listed.output
    items = json.loads(listed.stdout)
    (mine,) = [k for k in items if k["name"] == "wall screen"]
    assert mine["prefix"] == key[:16] and mine["status"] == "active"
    assert key not in listed.stdout
    table = cli.run("keys", "list")
    assert "wall screen" in table.stdout and key[:16] in table.stdout and key not in table.stdout

    rotated = cli.run("keys", "rotate", str(mine["id"]), "--overlap", "10m", "--json")
    assert rotated.code == 0, rotated.output
    body = json.loads(rotated.stdout)
    new_key = body["new"]["key"]
    assert body["new"]["name"] == "wall screen" and body["old"]["expires_at"]
    assert works(cli, key) and works(cli, new_key)  # the overlap

    refused = cli.run("keys", "revoke", str(body["new"]["id"]))
    assert refused.code == 1 and "--yes" in refused.stderr  # no terminal: only --yes proceeds
    assert works(cli, new_key)
    revoked = cli.run("keys", "revoke", str(body["new"]["id"]), "--yes")
    assert revoked.code == 0 and "revoked" in revoked.stdout, revoked.output
    assert not works(cli, new_key)
    old = cli.run("keys", "rotate", str(mine["id"]))  # the overlapping one, revoked at once
    assert old.code == 0 and f"key {mine['id']} revoked" in old.stdout, old.output
    assert not works(cli, key)

    active = json.loads(cli.run("keys", "list", "--json").stdout)
    everything = json.loads(cli.run("keys", "list", "--all", "--json").stdout)
    assert mine["id"] not in {k["id"] for k in active}
    assert {"revoked"} <= {k["status"] for k in everything}


def test_key_errors_exit_1_with_the_api_message(cli: Cli) -> None:
    for args, key, message in [
        (["keys", "list"], "viewer", "needs an admin key"),
        (["keys", "create", "owner"], "admin", "role"),
        (["keys", "create", "viewer", "--ttl", "soon"], "admin", "is not a duration"),
        (["keys", "create", "viewer", "--ttl", "1d", "--expires-at", "x"], "admin", "not both"),
        (["keys", "revoke", "999999", "--yes"], "admin", "no API key 999999"),
    ]:
        run = cli.run(*args, key=key)
        assert run.code == 1, run.output
        assert message in run.stderr, (args, run.stderr)
        assert "Traceback" not in run.output
