"""The database a control-plane process opens: its URL, SQLite's durability, and the server
key its encrypted columns use, from ``FACEFLEET_ENCRYPTION_KEYS`` or, in the embedded mode
only, generated once into the data directory (mode 0600) and reused."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine

from facefleet.api.config import Settings
from facefleet.api.storage.db.encryption import (
    SETTING,
    Cipher,
    EncryptionError,
    check_readable,
    cipher_of,
)
from facefleet.api.storage.db.engine import create_engine
from facefleet.api.storage.db.migrate import upgrade
from facefleet.api.storage.db.models import Base

log = logging.getLogger(__name__)

KEYS_FILE = "encryption-keys"
NEW_KEY = "generate one with `facefleet db new-key`"


def keys_path(data_dir: Path) -> Path:
    return data_dir / KEYS_FILE


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


def parse_keys(text: str) -> Cipher:
    """Comma-separated Fernet keys: the first encrypts, every one decrypts."""
    keys = [key.strip() for key in text.split(",") if key.strip()]
    if not keys:
        raise EncryptionError(f"{SETTING} holds no key; {NEW_KEY}")
    fernets = []
    for number, key in enumerate(keys, 1):
        try:
            fernets.append(Fernet(key))
        except ValueError:  # never repeat the key itself: it may be one with a typo
            raise EncryptionError(
                f"{SETTING}: key {number} of {len(keys)} is not a Fernet key (32 url-safe "
                f"base64-encoded bytes); {NEW_KEY}"
            ) from None
    return MultiFernet(fernets)


def server_cipher(settings: Settings) -> Cipher:
    """The deployment's cipher; a shared database or Redis without the setting is refused:
    every replica must hold the same keys, which no replica can make up on its own."""
    if settings.encryption_keys is not None:
        return parse_keys(settings.encryption_keys.get_secret_value())
    if not settings.embedded:
        raise EncryptionError(
            f"{SETTING} is not set: with PostgreSQL or Redis every replica needs the same key "
            f"to encrypt camera source URLs; {NEW_KEY} and set it on every replica"
        )
    return parse_keys(_embedded_keys(settings.data_dir))


def _embedded_keys(data_dir: Path) -> str:
    path = keys_path(data_dir)
    if path.exists():
        return path.read_text()
    data_dir.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=f".{KEYS_FILE}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(new_key() + "\n")
        # A link never replaces a file: two processes starting together share one key.
        os.link(temporary, path)
        log.warning(
            "generated the key camera source URLs are encrypted with: %s (mode 0600); back "
            "it up with the database",
            path.resolve(),
        )
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
    return path.read_text()


def open_database(settings: Settings) -> AsyncEngine:
    """The configured database's engine; EncryptionError when there is no usable key."""
    return create_engine(
        settings.resolved_database_url,
        cipher=server_cipher(settings),
        sqlite_synchronous=settings.sqlite_synchronous,
    )


async def prepare(engine: AsyncEngine) -> None:
    """Migrate, then make sure the keys read what is stored (EncryptionError if not)."""
    await upgrade(engine)
    cipher = cipher_of(engine.sync_engine.dialect)
    async with engine.connect() as conn:
        await conn.run_sync(check_readable, Base.metadata, cipher)
