"""`facefleet webhooks` against a control plane served over real HTTP, delivering to a real
receiver: create prints the secret once, list/test/deliveries/dead-letters/delete work,
errors print the API's message and exit non-zero without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from facefleet.api.app import create_app
from facefleet.api.security import Role
from facefleet.api.tenants.service import create_tenant
from facefleet.cli.webhooks import app as webhooks_app
from tests.fixtures.harness import make_settings
from tests.fixtures.live_server import live_server
from tests.fixtures.waiting import wait_for
from tests.fixtures.webhook_receiver import webhook_receiver


def test_the_webhooks_commands(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        f"sqlite+aiosqlite:///{tmp_path / 'facefleet.db'}",
        run_background=True,
        integrations_poll_period=0.05,
        webhook_retry_base=0.1,
        webhook_retry_max=0.2,
        webhook_max_attempts=2,
    )
    runner = CliRunner()
    with live_server(create_app(settings)) as server, webhook_receiver() as receiver:

        async def tenant() -> dict[Role, str]:
            async with server.state.sessions() as session:
                created = await create_tenant(session, "hall")
                await session.commit()
            return created.keys

        keys = server.call(tenant())
        env = {"FACEFLEET_API_URL": server.base_url, "FACEFLEET_API_KEY": keys[Role.admin]}

        def run(*args: str, key: str | None = None) -> tuple[int, str]:
            result = runner.invoke(
                webhooks_app,
                list(args),
                env={**env, "FACEFLEET_API_KEY": key or env["FACEFLEET_API_KEY"]},
            )
            assert result.exception is None or isinstance(result.exception, SystemExit), (
                result.output
            )
            return result.exit_code, result.output

        code, out = run("create", receiver.url, "-e", "sighting", "-e", "registered")
        assert code == 0, out
        secret = next(w for w in out.split() if w.startswith("whsec_"))
        assert "never shown again" in out

        code, out = run("list", "--json")
        assert code == 0, out
        (hook,) = json.loads(out)
        assert hook["url"] == receiver.url and secret not in out
        hook_id = str(hook["id"])
        code, out = run("list")
        assert code == 0 and "sighting" in out and "hooks" in out and secret not in out

        code, out = run("test", hook_id)
        assert code == 0 and "ping delivered: HTTP 200" in out, out
        assert len(receiver.received()) == 1

        receiver.answer(then=500)
        code, out = run("test", hook_id)
        assert code == 1 and "not delivered" in out and "HTTP 500" in out, out
        wait_for(lambda: len(receiver.received()) >= 3, 10, "the ping's last attempt")

        def dead() -> list[object] | None:
            code, out = run("dead-letters", hook_id, "--json")
            assert code == 0, out
            items: list[object] = json.loads(out)["items"]
            return items or None

        (letter,) = wait_for(dead, 10, "a dead letter")
        code, out = run("dead-letters", hook_id)
        assert code == 0 and "ping" in out and "dead" in out, out
        code, out = run("deliveries", hook_id)
        assert code == 0 and "delivered" in out and "dead" in out, out
        code, out = run("deliveries", hook_id, "--status", "delivered", "--json")
        assert [d["status"] for d in json.loads(out)["items"]] == ["delivered"]

        # Errors: the API's message, a non-zero exit, no traceback.
        code, out = run("create", "ftp://nowhere", "-e", "sighting")
        assert code == 1 and "http:// or https://" in out and "Traceback" not in out, out
        code, out = run("create", receiver.url, key=keys[Role.viewer])
        assert code == 1 and "Forbidden" in out and "admin key" in out, out
        code, out = run("delete", "999")
        assert code == 1 and "WebhookNotFound" in out, out
        code, out = run("list", key="not-a-key")
        assert code == 1 and "Unauthorized" in out, out

        code, out = run("delete", hook_id)
        assert code == 0 and f"webhook {hook_id} deleted" in out
        code, out = run("list", "--json")
        assert json.loads(out) == []
        assert letter
