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
from facefleet.api.unit_of_work import UnitOfWork, written
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

    async def _worker(
        self, uow: UnitOfWork, principal: Principal, worker_id: str, *, lock: bool = False
    ) -> Worker:
        find = workers_repo.get_for_update if lock else workers_repo.get
        row = await find(uow.session, principal.tenant_id, worker_id)
        if row is None:
            raise not_registered(worker_id)
        return row

    async def create(
        self, uow: UnitOfWork, principal: Principal, worker_id: str, req: schemas.CommandCreate
    ) -> tuple[schemas.CommandOut, bool]:
        """The command and whether it was created now (False: an idempotent repeat).

        Either way an open command ends up deliverable: a repeat after a failed hand-over
        to the hot store makes it deliverable again."""
        # Locked like every change the anti-entropy pass compares.
        row = await self._worker(uow, principal, worker_id, lock=True)
        now = to_datetime(self.state.clock())
        command, created = await commands_repo.create_once(
            uow.session,
            Command(
                tenant_id=principal.tenant_id,
                worker_pk=row.id,
                type=req.type,
                payload=req.payload,
                idempotency_key=req.idempotency_key,
                created_at=now,
                expires_at=now + timedelta(seconds=req.ttl_seconds),
            ),
        )
        out = command_out(command, worker_id)
        tenant_id = principal.tenant_id
        if command.status in commands_repo.OPEN and command.expires_at > now:
            item = delivery(command)

            async def deliverable() -> None:
                added = await self.hot.add_command(tenant_id, worker_id, item)
                written(added or None, (tenant_id, worker_id))

            uow.after_commit(deliverable, repairs=(tenant_id, worker_id))
        if created:

            async def publish() -> None:
                await self.state.events.publish(
                    tenant_id, "command_created", out.model_dump(mode="json")
                )

            uow.after_commit(publish)
        return out, created

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
        await self._worker(uow, principal, worker_id, lock=True)
        command = await commands_repo.get(uow.session, live.pk, command_id)
        if command is None:
            raise CommandNotFound(f"worker {worker_id!r} has no command {command_id}")
        tenant_id = principal.tenant_id
        if command.status not in commands_repo.OPEN:

            async def undeliverable() -> None:
                await self.hot.remove_command(tenant_id, worker_id, command_id)

            # A repeated ack (its answer was lost) changes nothing but the hand-out.
            uow.after_commit(undeliverable, repairs=(tenant_id, worker_id))
            if command.status == "expired":
                raise Conflict(f"command {command_id} expired before it was acknowledged")
            return command_out(command, worker_id)
        now = to_datetime(self.state.clock())
        command.status = req.status
        command.result = req.result
        command.completed_at = now
        command.delivered_at = command.delivered_at or now
        await uow.session.flush()
        out = command_out(command, worker_id)

        async def publish() -> None:
            await self.hot.remove_command(tenant_id, worker_id, command_id)
            await self.state.events.publish(tenant_id, "command_acked", out.model_dump(mode="json"))

        uow.after_commit(publish, repairs=(tenant_id, worker_id))
        return out
