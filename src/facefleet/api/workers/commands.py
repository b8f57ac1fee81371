"""Commands for workers: created by operators, delivered in heartbeat responses,
acknowledged by the worker with a result, expired by the reaper after their TTL."""

from __future__ import annotations

from datetime import timedelta

from facefleet.api.clock import to_datetime
from facefleet.api.errors import Conflict, NotFound
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import commands_repo, workers_repo
from facefleet.api.storage.db.commands_repo import delivery
from facefleet.api.storage.db.models import Command, Worker
from facefleet.api.storage.hot.base import LiveWorker
from facefleet.api.unit_of_work import UnitOfWork
from facefleet.api.workers import schemas
from facefleet.api.workers.identity import not_registered


class CommandNotFound(NotFound):
    pass


def command_out(command: Command, worker_id: str) -> schemas.CommandOut:
    return schemas.CommandOut(
        id=command.id,
        worker_id=worker_id,
        type=command.type,
        payload=command.payload,
        status=command.status,
        idempotency_key=command.idempotency_key,
        result=command.result,
        created_at=command.created_at,
        delivered_at=command.delivered_at,
        completed_at=command.completed_at,
        expires_at=command.expires_at,
    )


class CommandService:
    def __init__(self, state: AppState) -> None:
        self.state = state
        self.hot = state.hot

    async def _worker(self, uow: UnitOfWork, principal: Principal, worker_id: str) -> Worker:
        row = await workers_repo.get(uow.session, principal.tenant_id, worker_id)
        if row is None:
            raise not_registered(worker_id)
        return row

    async def create(
        self, uow: UnitOfWork, principal: Principal, worker_id: str, req: schemas.CommandCreate
    ) -> tuple[schemas.CommandOut, bool]:
        """The command and whether it was created now (False: an idempotent repeat)."""
        row = await self._worker(uow, principal, worker_id)
        session = uow.session
        if req.idempotency_key is not None:
            existing = await commands_repo.by_key(session, row.id, req.idempotency_key)
            if existing is not None:
                return command_out(existing, worker_id), False
        now = to_datetime(self.state.clock())
        command = Command(
            tenant_id=principal.tenant_id,
            worker_pk=row.id,
            type=req.type,
            payload=req.payload,
            idempotency_key=req.idempotency_key,
            created_at=now,
            expires_at=now + timedelta(seconds=req.ttl_seconds),
        )
        session.add(command)
        await session.flush()
        item = delivery(command)
        out = command_out(command, worker_id)

        async def publish() -> None:
            await self.hot.push_pending(principal.tenant_id, worker_id, item)
            await self.state.events.publish(
                principal.tenant_id, "command_created", out.model_dump(mode="json")
            )

        uow.after_commit(publish)
        return out, True

    async def list(
        self,
        uow: UnitOfWork,
        principal: Principal,
        worker_id: str,
        status: str | None,
        offset: int,
        limit: int,
    ) -> schemas.CommandPage:
        row = await self._worker(uow, principal, worker_id)
        commands = await commands_repo.for_worker(uow.session, row.id, status, offset, limit)
        return schemas.CommandPage(
            items=[command_out(c, worker_id) for c in commands], offset=offset, limit=limit
        )

    async def get(
        self, uow: UnitOfWork, principal: Principal, worker_id: str, command_id: int
    ) -> schemas.CommandOut:
        row = await self._worker(uow, principal, worker_id)
        command = await commands_repo.get(uow.session, row.id, command_id)
        if command is None:
            raise CommandNotFound(f"worker {worker_id!r} has no command {command_id}")
        return command_out(command, worker_id)

    async def ack(
        self,
        uow: UnitOfWork,
        principal: Principal,
        live: LiveWorker,
        command_id: int,
        req: schemas.CommandAck,
    ) -> schemas.CommandOut:
        worker_id = live.worker_id
        command = await commands_repo.get(uow.session, live.pk, command_id)
        if command is None:
            raise CommandNotFound(f"worker {worker_id!r} has no command {command_id}")
        if command.status in ("acked", "failed"):
            return command_out(command, worker_id)  # a repeated ack changes nothing
        if command.status == "expired":
            raise Conflict(f"command {command_id} expired before it was acknowledged")
        now = to_datetime(self.state.clock())
        command.status = req.status
        command.result = req.result
        command.completed_at = now
        command.delivered_at = command.delivered_at or now
        await uow.session.flush()
        out = command_out(command, worker_id)

        async def publish() -> None:
            await self.state.events.publish(
                principal.tenant_id, "command_acked", out.model_dump(mode="json")
            )

        uow.after_commit(publish)
        return out
