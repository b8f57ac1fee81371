"""Columns encrypted at rest with the server key (Fernet: AES-128-CBC and HMAC-SHA256, a
fresh IV every time), and the passes over them: re-encryption under the newest key, and the
start-up check that the keys in use can read what is stored.

An engine gets its cipher with ``bind_cipher`` (``create_engine(cipher=...)``); every
statement on it then encrypts on the way in and decrypts on the way out, so no code path can
store plaintext and none needs to know. Equal plaintexts encrypt differently: an encrypted
column can be neither searched nor compared in SQL, and its type refuses a query that tries.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

from cryptography.fernet import InvalidToken, MultiFernet
from sqlalchemy import Column, MetaData, Table, Text, bindparam, select, update
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import operators
from sqlalchemy.sql.operators import OperatorType
from sqlalchemy.types import TypeDecorator

Cipher = MultiFernet
SETTING = "FACEFLEET_ENCRYPTION_KEYS"
_CIPHERS: weakref.WeakKeyDictionary[Dialect, Cipher] = weakref.WeakKeyDictionary()


class EncryptionError(RuntimeError):
    """No key, a key that is not one, or stored values no key can read: one line."""


def bind_cipher(engine: AsyncEngine, cipher: Cipher) -> None:
    # The dialect is the engine's own (shared by its connections and option copies) and is
    # what a column type is handed.
    _CIPHERS[engine.sync_engine.dialect] = cipher


def cipher_of(dialect: Dialect) -> Cipher:
    cipher = _CIPHERS.get(dialect)
    if cipher is None:
        raise EncryptionError(
            "this database engine has no encryption key: open it with "
            "facefleet.api.database.open_database (or create_engine(cipher=...))"
        )
    return cipher


def encrypt(cipher: Cipher, plaintext: str) -> str:
    return cipher.encrypt(plaintext.encode()).decode("ascii")


def decrypt(cipher: Cipher, token: str) -> str:
    try:
        return cipher.decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError):
        raise EncryptionError(
            f"a stored value cannot be decrypted with the keys in {SETTING}: it was encrypted "
            "with a key that is not among them (or is not encrypted)"
        ) from None


def is_encrypted(cipher: Cipher, value: str) -> bool:
    try:
        decrypt(cipher, value)
    except EncryptionError:
        return False
    return True


# What may still be asked of an encrypted column in SQL: whether it is null.
_ALLOWED = frozenset({operators.is_, operators.is_not})
_UNSEARCHABLE = "an encrypted column cannot be compared or searched in SQL"


class _Unsearchable(TypeDecorator.Comparator[str]):
    """A filter on ciphertext would silently match nothing (equal values encrypt
    differently): refused when the query is built."""

    __slots__ = ()

    def operate(self, op: OperatorType, *other: Any, **kwargs: Any) -> Any:
        if op not in _ALLOWED:
            raise TypeError(_UNSEARCHABLE)
        return super().operate(op, *other, **kwargs)

    def reverse_operate(self, op: OperatorType, other: Any, **kwargs: Any) -> Any:
        raise TypeError(_UNSEARCHABLE)


class EncryptedText(TypeDecorator[str]):
    """Text stored as a Fernet token under the engine's first key."""

    impl = Text
    cache_ok = True
    comparator_factory = _Unsearchable

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else encrypt(cipher_of(dialect), value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else decrypt(cipher_of(dialect), value)


def encrypted_columns(metadata: MetaData) -> Iterator[tuple[Table, Column[Any]]]:
    """Every encrypted column with its table (whose primary key is one column)."""
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                yield table, column


def _raw(table: Table, column: Column[Any]) -> tuple[Column[Any], Column[Any], Table]:
    """The table seen with plain types: values as stored, tokens not decrypted."""
    (pk,) = table.primary_key.columns
    raw = Table(table.name, MetaData(), Column(pk.name, pk.type), Column(column.name, Text))
    return raw.c[pk.name], raw.c[column.name], raw


def reencrypt(conn: Connection, metadata: MetaData, cipher: Cipher) -> int:
    """Every encrypted value re-encrypted under the first key (after a key was added in
    front); how many were. Each row is compare-and-set, so a value a replica rewrote
    meanwhile (already under the first key) is left as it is."""
    done = 0
    for table, column in encrypted_columns(metadata):
        pk, value, raw = _raw(table, column)
        rows = conn.execute(select(pk, value).where(value.is_not(None))).all()
        stmt = (
            update(raw)
            .where(pk == bindparam("row"), value == bindparam("old"))
            .values({value.name: bindparam("new")})
        )
        for row, old in rows:
            try:
                new = cipher.rotate(old.encode("ascii")).decode("ascii")
            except (InvalidToken, UnicodeEncodeError):
                raise EncryptionError(
                    f"{table.name}.{column.name} of row {row} cannot be decrypted with the "
                    f"keys in {SETTING}: add the key it was encrypted with, after the new one"
                ) from None
            done += conn.execute(stmt, {"row": row, "old": old, "new": new}).rowcount
    return done


def check_readable(conn: Connection, metadata: MetaData, cipher: Cipher) -> None:
    """Fail at start-up, not at the first request, when the keys cannot read what is
    stored: the oldest and the newest row of each encrypted column are tried (a key dropped
    before ``reencrypt`` ran, or a key replaced instead of rotated)."""
    for table, column in encrypted_columns(metadata):
        pk, value, _raw_table = _raw(table, column)
        for order in (pk.asc(), pk.desc()):
            stored = conn.execute(
                select(value).where(value.is_not(None)).order_by(order).limit(1)
            ).scalar()
            if stored is not None and not is_encrypted(cipher, stored):
                raise EncryptionError(
                    f"{table.name}.{column.name} holds values the keys in {SETTING} cannot "
                    "decrypt: set the key they were encrypted with (after the new one, until "
                    "`facefleet db reencrypt` has run)"
                )
