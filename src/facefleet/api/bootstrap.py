"""First start of the embedded mode: a 'default' tenant whose keys go to a 0600 file."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sqlalchemy.exc import IntegrityError

from facefleet.api.errors import Conflict
from facefleet.api.state import AppState
from facefleet.api.tenants.service import any_tenant, create_tenant

log = logging.getLogger(__name__)

KEYS_FILE = "default-tenant-keys.json"


def keys_path(data_dir: Path) -> Path:
    return data_dir / KEYS_FILE


async def ensure_default_tenant(state: AppState) -> Path | None:
    """Create the default tenant when the database has none; return where its keys are."""
    path = keys_path(state.settings.data_dir)
    async with state.sessions() as session:
        if await any_tenant(session):
            return path if path.exists() else None
        try:
            created = await create_tenant(session, "default")
            await session.commit()
        except (Conflict, IntegrityError):
            # Another replica, starting at the same time, created it first.
            await session.rollback()
            return path if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "tenant": created.name,
        "tenant_id": created.id,
        "keys": {role.value: key for role, key in created.keys.items()},
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh, indent=2)
    os.chmod(path, 0o600)
    log.warning("created tenant 'default'; its API keys are in %s (mode 0600)", path.resolve())
    return path
