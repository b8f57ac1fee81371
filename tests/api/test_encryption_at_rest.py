"""Camera source URLs are encrypted at rest: the column holds neither the URL nor its
password on SQLite and PostgreSQL, the API still shows it masked and the worker holding the
lease gets it whole; keys rotate with `facefleet db reencrypt`; the embedded mode makes its
own key and reuses it; a shared deployment without one refuses to start, in one line; and
migration 0010 encrypts the plaintext rows a database already holds."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from facefleet.api.config import Settings
from facefleet.api.database import keys_path, new_key, parse_keys, server_cipher
from facefleet.api.security import Role
from facefleet.api.storage.db.encryption import EncryptionError
from facefleet.api.storage.db.engine import create_engine
from facefleet.api.storage.db.migrate import alembic_config, upgrade
from facefleet.api.storage.db.models import Camera, UTCDateTime
from facefleet.protocol.source_urls import mask_source_url
from tests.fixtures.harness import (
    ENCRYPTION_KEYS,
    Api,
    WorkerHandle,
    make_settings,
    running_api,
)

PASSWORD = "Zq9-p4ss#word"
URL = f"rtsp://admin:{PASSWORD}@10.9.8.7:554/live?token=Tk7secret"
# What would give the URL away in the raw column.
PIECES = (PASSWORD, "Zq9", "Tk7secret", "admin", "10.9.8.7", "rtsp", "live")


async def raw_urls(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT source_url FROM cameras ORDER BY id"))
        return [value for (value,) in rows]


def assert_ciphertext(stored: str) -> None:
    for piece in PIECES:
        assert piece not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token


async def add_camera(api: Api, tenant: Any, name: str = "door", source: str = URL) -> int:
    resp = await api.client.post(
        "/v1/cameras", json={"name": name, "source_url": source}, headers=tenant.headers()
    )
    assert resp.status_code == 201, resp.text
    camera_id: int = resp.json()["id"]
    return camera_id


async def worker_gets(api: Api, tenant: Any, worker_id: str = "w1") -> str:
    worker = WorkerHandle(api, tenant, worker_id)
    assert (await worker.register()).status_code == 200
    granted = await worker.request_camera()
    assert granted.status_code == 200, granted.text
    current = await api.client.get(f"/v1/workers/{worker_id}/camera", headers=worker.headers)
    assert current.status_code == 200, current.text
    (assignment,) = current.json()["assignments"]
    # The grant and the worker's current list say the same.
    assert granted.json()["assignment"]["source_url"] == assignment["source_url"]
    source: str = assignment["source_url"]
    return source


async def test_the_column_holds_ciphertext_the_api_masks_the_worker_gets_the_url(
    api: Api,
) -> None:
    tenant = await api.tenant()
    camera_id = await add_camera(api, tenant)
    (stored,) = await raw_urls(api.state.engine)
    assert_ciphertext(stored)
    assert parse_keys(ENCRYPTION_KEYS).decrypt(stored.encode()).decode() == URL
    # Equal URLs are stored differently: nothing is learnt by comparing rows.
    await add_camera(api, tenant, "door-2")
    assert len(set(await raw_urls(api.state.engine))) == 2

    for role in (Role.admin, Role.viewer):
        shown = await api.client.get(f"/v1/cameras/{camera_id}", headers=tenant.headers(role))
        assert shown.json()["source_url"] == mask_source_url(URL)
        assert PASSWORD not in shown.text and "Tk7secret" not in shown.text
    assert await worker_gets(api, tenant) == URL

    # An edit is encrypted as well.
    edited = URL.replace("10.9.8.7", "10.9.8.6")
    resp = await api.client.patch(
        f"/v1/cameras/{camera_id}", json={"source_url": edited}, headers=tenant.headers()
    )
    assert resp.status_code == 200, resp.text
    assert_ciphertext((await raw_urls(api.state.engine))[0])
    assert "10.9.8.6" not in (await raw_urls(api.state.engine))[0]


async def reencrypt(
    tmp_path: Path, database_url: str, keys: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_")}
    env.update(
        FACEFLEET_DATA_DIR=str(tmp_path / "data"),
        FACEFLEET_DATABASE_URL=database_url,
        FACEFLEET_ENCRYPTION_KEYS=keys,
    )
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "facefleet", "db", "reencrypt"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_key_rotates_with_reencrypt(empty_database: str, tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    settings = make_settings(tmp_path, empty_database, encryption_keys=old)
    async with running_api(settings) as api:
        tenant = await api.tenant()
        for i in range(3):
            await add_camera(api, tenant, f"cam-{i}", URL.replace("live", f"live{i}"))

    # The new key first: new writes use it, old rows still read.
    rotated = make_settings(tmp_path, empty_database, encryption_keys=f"{new},{old}")
    async with running_api(rotated) as api:
        await add_camera(api, tenant, "cam-new")
        stored = await raw_urls(api.state.engine)
    Fernet(new).decrypt(stored[3].encode())
    with pytest.raises(InvalidToken):
        Fernet(new).decrypt(stored[0].encode())

    # Dropping the old key before reencrypt ran is refused at start, naming the column.
    with pytest.raises(EncryptionError, match=r"cameras\.source_url .* cannot decrypt"):
        async with running_api(make_settings(tmp_path, empty_database, encryption_keys=new)):
            pass

    done = await reencrypt(tmp_path, empty_database, f"{new},{old}")
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 4 values" in done.stdout
    engine = create_engine(empty_database)
    try:
        for stored_url in await raw_urls(engine):
            assert_ciphertext(stored_url)
            Fernet(new).decrypt(stored_url.encode())  # the new key alone reads every row
    finally:
        await engine.dispose()

    async with running_api(make_settings(tmp_path, empty_database, encryption_keys=new)) as api:
        assert await worker_gets(api, tenant) in {URL.replace("live", f"live{i}") for i in range(3)}


async def test_the_embedded_mode_makes_its_key_once_and_reuses_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = make_settings(data, f"sqlite+aiosqlite:///{tmp_path / 'f.db'}", encryption_keys=None)
    assert settings.embedded
    async with running_api(settings) as api:
        tenant = await api.tenant()
        await add_camera(api, tenant)
    key_file = keys_path(data)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert [p.name for p in data.iterdir() if p.name.startswith(".")] == []
    async with running_api(settings) as api:
        assert await worker_gets(api, tenant) == URL
        (stored,) = await raw_urls(api.state.engine)
    assert key_file.read_text() == key
    assert MultiFernet([Fernet(key.strip())]).decrypt(stored.encode()).decode() == URL

    # A key that cannot read the rows (the file replaced): refused at start, not at a request.
    key_file.write_text(new_key())
    with pytest.raises(EncryptionError, match="cannot decrypt"):
        async with running_api(settings):
            pass


@pytest.mark.parametrize(
    "shared",
    [
        {"database_url": "postgresql+asyncpg://facefleet@127.0.0.1:1/facefleet"},
        {"redis_url": "redis://127.0.0.1:1/0"},
    ],
)
async def test_a_shared_deployment_without_a_key_refuses_to_start(
    tmp_path: Path, shared: dict[str, Any]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", encryption_keys=None, **shared)
    assert not settings.embedded
    # Refused before anything is reached (nothing listens on port 1) or written.
    with pytest.raises(EncryptionError, match="FACEFLEET_ENCRYPTION_KEYS is not set") as caught:
        async with running_api(settings):
            pass
    assert "facefleet db new-key" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "data").exists()


def test_serve_without_a_key_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEFLEET_")}
    env.update(
        FACEFLEET_DATA_DIR=str(tmp_path / "data"),
        FACEFLEET_DATABASE_URL="postgresql+asyncpg://facefleet@127.0.0.1:1/facefleet",
    )
    done = subprocess.run(
        [sys.executable, "-m", "facefleet", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "FACEFLEET_ENCRYPTION_KEYS is not set" in lines[0]
    assert "facefleet db new-key" in lines[0]


def test_new_key_prints_a_key_that_the_setting_takes(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "facefleet", "db", "new-key"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    settings = Settings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/0", encryption_keys=key)
    assert server_cipher(settings).decrypt(Fernet(key).encrypt(b"x")) == b"x"
    # The key is a secret: never in the settings' repr.
    assert key not in repr(settings) and key not in str(settings.model_dump())


def test_a_query_cannot_filter_on_ciphertext() -> None:
    # It would match nothing, silently: equal URLs encrypt differently.
    queries: list[Callable[[], object]] = [
        lambda: Camera.source_url == URL,
        lambda: Camera.source_url.like("%10.9.8.7%"),
        lambda: Camera.source_url.in_([URL]),
    ]
    for query in queries:
        with pytest.raises(TypeError, match="cannot be compared or searched"):
            query()
    assert "IS NOT NULL" in str(select(Camera.id).where(Camera.source_url.is_not(None)))


@pytest.mark.parametrize("keys", ["", " , ", "not-a-key", f"{new_key()},{new_key()[:-2]}"])
def test_a_bad_key_is_refused_without_repeating_it(keys: str) -> None:
    with pytest.raises(EncryptionError) as caught:
        parse_keys(keys)
    message = str(caught.value)
    assert "facefleet db new-key" in message
    for given in keys.split(","):
        if given.strip():
            assert given.strip() not in message


NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _downgrade(sync_connection: Any, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = sync_connection
    command.downgrade(cfg, revision)


async def test_the_migration_encrypts_plaintext_rows_and_downgrades(empty_database: str) -> None:
    urls = [URL, "file:///srv/videos/lobby.mp4", "/dev/video0"]
    engine = create_engine(empty_database, cipher=parse_keys(ENCRYPTION_KEYS))
    try:
        await upgrade(engine, "0008")
        async with engine.begin() as conn:
            now = bindparam("now", type_=UTCDateTime())
            await conn.execute(
                text(
                    "INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', :now)"
                ).bindparams(now),
                {"now": NOW},
            )
            for i, source in enumerate(urls):
                await conn.execute(
                    text(
                        "INSERT INTO cameras (tenant_id, name, source_url, enabled, target_fps, "
                        "priority, created_at, updated_at) VALUES ('t', :name, :url, true, 5, 0, "
                        ":now, :now)"
                    ).bindparams(now),
                    {"name": f"c{i}", "url": source, "now": NOW},
                )
        await upgrade(engine)
        stored = await raw_urls(engine)
        assert_ciphertext(stored[0])
        cipher = parse_keys(ENCRYPTION_KEYS)
        assert [cipher.decrypt(s.encode()).decode() for s in stored] == urls
        # Run again on rows it encrypted (as after an interrupted run): none twice.
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = '0009'"))
        await upgrade(engine)
        assert [cipher.decrypt(s.encode()).decode() for s in await raw_urls(engine)] == urls
        async with engine.connect() as conn:
            await conn.run_sync(_downgrade, "0009")
            await conn.commit()
        assert await raw_urls(engine) == urls
    finally:
        await engine.dispose()


async def test_a_database_without_cameras_migrates_without_a_key(empty_database: str) -> None:
    engine = create_engine(empty_database)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            version = await conn.execute(text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == "0010"
    finally:
        await engine.dispose()
