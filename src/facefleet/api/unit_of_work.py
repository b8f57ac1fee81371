"""A request's database session plus the hot-store writes that must follow its commit."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from facefleet.api.errors import CONCURRENT_CHANGE, Conflict, ServiceUnavailable

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]
# A worker whose hot record may lag the database: (tenant_id, worker_id).
WorkerRef = tuple[str, str]


class NoHotRecord(LookupError):
    """A write-through found no hot record to change (it expired or was replaced meanwhile)."""


def written(result: object, worker: WorkerRef) -> None:
    """A hot-store write that returned None found no record: treat it as a failed write, so
    the worker is repaired from the database."""
    if result is None:
        raise NoHotRecord(f"no hot record for {worker[0]}/{worker[1]}")


class UnitOfWork:
    def __init__(self, session: AsyncSession, repairs: set[WorkerRef] | None = None) -> None:
        self.session = session
        self._repairs = repairs
        self._after_commit: list[tuple[AfterCommit, WorkerRef | None]] = []

    def after_commit(self, action: AfterCommit, *, repairs: WorkerRef | None = None) -> None:
        """Run ``action`` once the transaction is durable (write-through to the hot store).

        The commit is the change: if the action fails (Redis unreachable), the caller is still
        told it succeeded, and ``repairs`` names the worker whose hot record the anti-entropy
        pass must bring back in line with the database.
        """
        self._after_commit.append((action, repairs))

    async def commit(self) -> None:
        await self.session.commit()
        actions, self._after_commit = self._after_commit, []
        for action, worker in actions:
            try:
                await action()
            except Exception as exc:
                log.warning(
                    "after commit: %s failed (%s: %s); %s",
                    getattr(action, "__qualname__", "an action"),
                    type(exc).__name__,
                    exc,
                    f"repairing {worker[1]!r}" if worker else "not retried",
                )
                if worker is not None and self._repairs is not None:
                    self._repairs.add(worker)

    async def rollback(self) -> None:
        self._after_commit.clear()
        await self.session.rollback()


@contextlib.asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession], repairs: set[WorkerRef] | None
) -> AsyncIterator[UnitOfWork]:
    """One unit of work, committed when the block ends (rolled back if it raises). A race on
    a unique key is a Conflict; a database that does not answer is ServiceUnavailable."""
    async with sessions() as session:
        uow = UnitOfWork(session, repairs)
        try:
            yield uow
        except BaseException:
            await uow.rollback()
            raise
        try:
            await uow.commit()
        except IntegrityError as exc:
            raise Conflict(CONCURRENT_CHANGE) from exc
        except (OperationalError, DBAPIError) as exc:
            raise ServiceUnavailable(f"database unavailable: {type(exc.orig).__name__}") from exc
        except ConnectionError as exc:  # the driver could not reach the server at all
            raise ServiceUnavailable(f"database unavailable: {type(exc).__name__}") from exc
