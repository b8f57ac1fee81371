"""A request's database session plus the hot-store writes that must follow its commit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

AfterCommit = Callable[[], Awaitable[None]]


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._after_commit: list[AfterCommit] = []

    def after_commit(self, action: AfterCommit) -> None:
        """Run ``action`` once the transaction is durable (write-through to the hot store)."""
        self._after_commit.append(action)

    async def commit(self) -> None:
        await self.session.commit()
        actions, self._after_commit = self._after_commit, []
        for action in actions:
            await action()

    async def rollback(self) -> None:
        self._after_commit.clear()
        await self.session.rollback()
