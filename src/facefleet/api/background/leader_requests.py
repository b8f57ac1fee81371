"""Asking the leader to do something now, from another replica (with Redis).

A replica that does not lead pushes its request onto a list in Redis and waits on a reply
key of its own; the leader takes the waiting requests at the start of each reaper pass,
answers each, and the reply key expires if nobody reads it. So every pass (the periodic
one, or one an operator asked for) runs on the leader, fenced by its lock, and no
replica's answer depends on which replica the load balancer picked.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

# Requests and replies nobody collected expire: a replica that gave up is gone.
KEEP_SECONDS = 60
TAKE_AT_ONCE = 32
BLOCK_SECONDS = 1.0


@dataclass(frozen=True)
class LeaderRequest:
    id: str
    tenant_id: str


class LeaderRequests:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._queue = f"{prefix}leader:requests"
        self._prefix = prefix

    def _reply_key(self, request_id: str) -> str:
        return f"{self._prefix}leader:reply:{request_id}"

    async def ask(self, tenant_id: str, wait: float) -> list[dict[str, Any]] | None:
        """The leader's answer to a cleanup of ``tenant_id``; None if none came in time."""
        request = LeaderRequest(uuid.uuid4().hex, tenant_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.rpush(self._queue, json.dumps(request.__dict__))
            pipe.expire(self._queue, KEEP_SECONDS)
            await pipe.execute()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            # Short blocking reads: the client's socket timeout is shorter than the wait.
            got = await self._client.blpop(
                [self._reply_key(request.id)], timeout=min(BLOCK_SECONDS, max(left, 0.01))
            )
            if got is not None:
                answer: list[dict[str, Any]] = json.loads(str(got[1]))
                return answer
        return None

    async def take(self) -> list[LeaderRequest]:
        raw = await self._client.lpop(self._queue, TAKE_AT_ONCE)
        items = raw if isinstance(raw, list) else []
        return [LeaderRequest(**json.loads(item)) for item in items]

    async def answer(self, request: LeaderRequest, reply: list[dict[str, Any]]) -> None:
        key = self._reply_key(request.id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.rpush(key, json.dumps(reply))
            pipe.expire(key, KEEP_SECONDS)
            await pipe.execute()
