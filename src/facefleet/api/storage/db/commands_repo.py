"""Commands sent to workers: pending -> delivered -> acked | failed | expired."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import Command, Worker
from facefleet.protocol.commands import CommandDelivery

OPEN = ("pending", "delivered")


async def by_key(session: AsyncSession, worker_pk: int, key: str) -> Command | None:
    return await session.scalar(
        select(Command).where(Command.worker_pk == worker_pk, Command.idempotency_key == key)
    )


async def get(session: AsyncSession, worker_pk: int, command_id: int) -> Command | None:
    return await session.scalar(
        select(Command).where(Command.worker_pk == worker_pk, Command.id == command_id)
    )


async def for_worker(
    session: AsyncSession, worker_pk: int, status: str | None, offset: int, limit: int
) -> list[Command]:
    query = select(Command).where(Command.worker_pk == worker_pk)
    if status is not None:
        query = query.where(Command.status == status)
    rows = await session.scalars(query.order_by(Command.id.desc()).offset(offset).limit(limit))
    return list(rows.all())


async def deliverable(session: AsyncSession, worker_pk: int, now: datetime) -> list[Command]:
    """Commands the worker must still receive: not acknowledged and not expired."""
    rows = await session.scalars(
        select(Command)
        .where(
            Command.worker_pk == worker_pk,
            Command.status.in_(OPEN),
            Command.expires_at > now,
        )
        .order_by(Command.id)
    )
    return list(rows.all())


async def create_once(session: AsyncSession, command: Command) -> tuple[Command, bool]:
    """Insert the command, or find the one with the same idempotency key; True when new.

    Two creations with one key at once insert once: the second one's insert fails on the
    unique key (after the first commits) and it returns the first one's row instead."""
    key = command.idempotency_key
    if key is not None and (existing := await by_key(session, command.worker_pk, key)):
        return existing, False
    try:
        async with session.begin_nested():
            session.add(command)
            await session.flush()
    except IntegrityError:
        if key is None:
            raise
        found = await by_key(session, command.worker_pk, key)
        if found is None:
            raise
        return found, False
    return command, True


async def mark_delivered(session: AsyncSession, ids: Sequence[int], now: datetime) -> None:
    if ids:
        await session.execute(
            update(Command)
            .where(Command.id.in_(list(ids)), Command.status == "pending")
            .values(status="delivered", delivered_at=now)
            .execution_options(synchronize_session=False)
        )


async def expire_due(
    session: AsyncSession, now: datetime, tenant_id: str | None = None
) -> list[tuple[Command, str]]:
    """Expire every open command past its deadline (of one tenant, when given); return them
    with their worker_id."""
    due = [Command.status.in_(OPEN), Command.expires_at <= now]
    if tenant_id is not None:
        due.append(Command.tenant_id == tenant_id)
    rows = (
        await session.execute(
            select(Command, Worker.worker_id)
            .join(Worker, Worker.id == Command.worker_pk)
            .where(*due)
            .with_for_update(of=Command, skip_locked=True)
        )
    ).all()
    for command, _ in rows:
        command.status = "expired"
        command.completed_at = now
    await session.flush()
    return [(command, worker_id) for command, worker_id in rows]


def delivery(command: Command) -> dict[str, Any]:
    """What a worker receives in its heartbeat responses until it acknowledges it."""
    return CommandDelivery(
        id=command.id,
        type=command.type,
        payload=command.payload,
        expires_at=command.expires_at.timestamp(),
    ).model_dump(mode="json")
