"""What MQTT last published on its retained topics, and the entities discovery announces."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from facefleet.api.storage.db.models import Camera, MqttTopic, Person, Tenant

STATE = "state"
DISCOVERY = "discovery"


async def topics(session: AsyncSession, names: Iterable[str]) -> dict[str, MqttTopic]:
    names = list(set(names))
    if not names:
        return {}
    rows = await session.scalars(select(MqttTopic).where(MqttTopic.topic.in_(names)))
    return {row.topic: row for row in rows}


async def topics_of_kind(session: AsyncSession, kind: str) -> dict[str, str]:
    """Topic -> digest of every retained topic of ``kind`` facefleet has published."""
    rows = await session.execute(
        select(MqttTopic.topic, MqttTopic.digest).where(MqttTopic.kind == kind)
    )
    return {topic: digest for topic, digest in rows}


async def remember_topic(
    session: AsyncSession, topic: str, kind: str, at: datetime, digest: str = ""
) -> None:
    row = await session.get(MqttTopic, topic)
    if row is None:
        session.add(MqttTopic(topic=topic, kind=kind, at=at, digest=digest))
    else:
        row.kind, row.at, row.digest = kind, at, digest


async def forget_topics(session: AsyncSession, names: Iterable[str]) -> None:
    names = list(names)
    if names:
        await session.execute(delete(MqttTopic).where(MqttTopic.topic.in_(names)))


async def cameras(session: AsyncSession) -> list[tuple[str, str, int, str]]:
    """(tenant id, tenant name, camera id, camera name) of every camera."""
    rows = await session.execute(
        select(Tenant.id, Tenant.name, Camera.id, Camera.name)
        .join(Camera, Camera.tenant_id == Tenant.id)
        .order_by(Camera.id)
    )
    return [(tid, tname, cid, cname) for tid, tname, cid, cname in rows]


async def people(session: AsyncSession) -> list[tuple[str, str, int, str]]:
    """(tenant id, tenant name, person id, person name) of every person in a gallery."""
    rows = await session.execute(
        select(Tenant.id, Tenant.name, Person.id, Person.name)
        .join(Person, Person.tenant_id == Tenant.id)
        .order_by(Person.id)
    )
    return [(tid, tname, pid, pname) for tid, tname, pid, pname in rows]
