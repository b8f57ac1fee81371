"""ORM models: ownership and history (the database side of the storage rule)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from facefleet.api.storage.db.encryption import EncryptedText

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite must never hand out a deleted row's id again: the fleet refers to these ids.
AUTOINCREMENT = {"sqlite_autoincrement": True}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Largest embedding distance that still counts as a match (cameras may override it).
    match_threshold: Mapped[float] = mapped_column(Float, default=0.6, server_default="0.6")
    # Bumped on every gallery edit; workers reload when the number they hold is older.
    gallery_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The ratio test of the matching rule (facefleet.face.gallery).
    match_ratio: Mapped[float] = mapped_column(Float, default=0.8, server_default="0.8")
    # Days sightings, and their face crops and embeddings, are kept (None: until deleted).
    sighting_retention_days: Mapped[int | None] = mapped_column(Integer, default=None)
    crop_retention_days: Mapped[int | None] = mapped_column(Integer, default=None)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = AUTOINCREMENT
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(24))
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Past it the key is refused as a revoked one is (a ttl, or the overlap of a rotation).
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Recorded when a replica verifies the key, at most about once a minute (keys/usage.py).
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class Worker(Base):
    __tablename__ = "workers"
    __table_args__ = (UniqueConstraint("tenant_id", "worker_id"), AUTOINCREMENT)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    worker_id: Mapped[str] = mapped_column(String(128))
    hostname: Mapped[str] = mapped_column(String(255), default="")
    instance_id: Mapped[str] = mapped_column(String(64), default="")
    session_hash: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[str] = mapped_column(String(64), default="")
    labels: Mapped[list[str]] = mapped_column(default=list)
    capacity: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="online")
    desired_state: Mapped[str] = mapped_column(String(16), default="run")
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Camera(Base):
    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("tenant_id", "name"), AUTOINCREMENT)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    # Credentials included: encrypted at rest; only the worker holding the lease sees it.
    source_url: Mapped[str] = mapped_column(EncryptedText)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    target_fps: Mapped[float] = mapped_column(Float, default=5.0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    match_threshold: Mapped[float | None] = mapped_column(Float, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CameraRequiredLabel(Base):
    """One row per label a camera requires; kept as rows so assignment can filter in SQL."""

    __tablename__ = "camera_required_labels"
    camera_id: Mapped[int] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    label: Mapped[str] = mapped_column(String(64), primary_key=True)


FREE_CAMERA = "worker_pk IS NULL AND enabled"


class CameraLease(Base):
    """Exactly one row per camera: its current owner (or none) and the fencing epoch."""

    __tablename__ = "camera_leases"
    __table_args__ = (
        # The best free camera is the first row of these in order (leases_repo).
        Index(
            "ix_camera_leases_free",
            "tenant_id",
            text("priority DESC"),
            "waiting_since",
            "camera_id",
            postgresql_where=text(FREE_CAMERA),
            sqlite_where=text(FREE_CAMERA),
        ),
        Index(
            "ix_camera_leases_sticky",
            "last_worker_pk",
            postgresql_where=text(FREE_CAMERA),
            sqlite_where=text(FREE_CAMERA),
        ),
    )
    camera_id: Mapped[int] = mapped_column(
        ForeignKey("cameras.id", ondelete="CASCADE"), primary_key=True
    )
    # The camera's, copied here so the choice of a free camera needs no join.
    tenant_id: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    worker_pk: Mapped[int | None] = mapped_column(
        ForeignKey("workers.id", ondelete="SET NULL"), index=True, default=None
    )
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    assigned_at: Mapped[datetime | None] = mapped_column(default=None)
    last_worker_pk: Mapped[int | None] = mapped_column(
        ForeignKey("workers.id", ondelete="SET NULL"), default=None
    )
    waiting_since: Mapped[datetime] = mapped_column(default=utcnow)
    # After the control plane takes a camera away from a live worker, that worker may still
    # believe its lease valid until its own deadline: nobody else gets the camera before.
    revoked_until: Mapped[datetime | None] = mapped_column(default=None)
    # A camera whose stream failed: how often in a row, why, and when it may be offered again.
    failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    backoff_until: Mapped[datetime | None] = mapped_column(default=None)


class Command(Base):
    __tablename__ = "commands"
    __table_args__ = (
        UniqueConstraint("worker_pk", "idempotency_key"),
        Index("ix_commands_status_expires", "status", "expires_at"),
        AUTOINCREMENT,
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    worker_pk: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    idempotency_key: Mapped[str | None] = mapped_column(String(128), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)


class WorkerEvent(Base):
    """Audit history: every ownership change and status transition of a worker."""

    __tablename__ = "worker_events"
    __table_args__ = (Index("ix_worker_events_worker_time", "worker_pk", "id"), AUTOINCREMENT)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    worker_pk: Mapped[int | None] = mapped_column(
        ForeignKey("workers.id", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(32))
    camera_id: Mapped[int | None] = mapped_column(Integer, default=None)
    epoch: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Person(Base):
    __tablename__ = "people"
    __table_args__ = AUTOINCREMENT
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    external_ref: Mapped[str | None] = mapped_column(String(200), default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# 64-bit ids for the tables that grow without bound; SQLite's INTEGER is 64-bit already and
# only "INTEGER PRIMARY KEY" is its rowid.
BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class FaceEmbedding(Base):
    """One enrolled face: its embedding (float32 bytes) and the model that made it."""

    __tablename__ = "faces"
    __table_args__ = AUTOINCREMENT
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    box: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sharpness: Mapped[float] = mapped_column(Float, default=0.0)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    source_name: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The sighting whose crop was enrolled (None for an uploaded photo).
    sighting_id: Mapped[int | None] = mapped_column(
        BIG_ID, ForeignKey("sightings.id", ondelete="SET NULL"), default=None, index=True
    )


class Sighting(Base):
    """A person (or an unknown face) seen by one camera over one track of frames."""

    __tablename__ = "sightings"
    __table_args__ = (
        UniqueConstraint("camera_id", "epoch", "track_id"),
        Index("ix_sightings_tenant_time", "tenant_id", "first_seen"),
        Index("ix_sightings_person_time", "person_id", "first_seen"),
        Index("ix_sightings_stranger_time", "stranger_id", "first_seen"),
        # The stranger clusterer's queue: few rows, found without scanning the table.
        Index(
            "ix_sightings_pending",
            "id",
            sqlite_where=text("clustering = 'pending'"),
            postgresql_where=text("clustering = 'pending'"),
        ),
        AUTOINCREMENT,
    )
    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    camera_id: Mapped[int] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), default=None
    )
    worker_pk: Mapped[int | None] = mapped_column(
        ForeignKey("workers.id", ondelete="SET NULL"), default=None
    )
    epoch: Mapped[int] = mapped_column(Integer)
    track_id: Mapped[str] = mapped_column(String(64))
    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()
    best_distance: Mapped[float | None] = mapped_column(Float, default=None)
    frames: Mapped[int] = mapped_column(Integer, default=1)
    crop: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The track's face embedding (float32, the gallery's model): sent by the worker, or
    # computed by the stranger clusterer from the crop.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    stranger_id: Mapped[int | None] = mapped_column(
        ForeignKey("strangers.id", ondelete="SET NULL"), default=None
    )
    # pending: an unknown face waiting for the stranger clusterer; done; no_face: nothing
    # to cluster by (no embedding, and no face found in the crop).
    clustering: Mapped[str] = mapped_column(String(16), default="done", server_default="done")
    # An operator said who this is (or is not): the worker's later updates keep that.
    operator_label: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


def _big_id() -> Mapped[int]:
    return mapped_column(BIG_ID, primary_key=True, autoincrement=True)


class OutboxEvent(Base):
    """An event recorded for the integrations (MQTT, webhooks) right after its transaction
    committed: what a broker outage or a control-plane restart must not lose."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_mqtt_due", "mqtt_due", "id"),
        Index("ix_outbox_events_occurred", "occurred_at"),
        AUTOINCREMENT,
    )
    id: Mapped[int] = _big_id()
    # Carried by every message and delivery: receivers de-duplicate on it.
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column()
    mqtt_due: Mapped[bool] = mapped_column(Boolean, default=False)
    mqtt_published_at: Mapped[datetime | None] = mapped_column(default=None)


class MqttTopic(Base):
    """What was last published on a retained topic (a state, or a discovery config), so an
    older state never replaces a newer one and removed entities can be cleared."""

    __tablename__ = "mqtt_topics"
    topic: Mapped[str] = mapped_column(String(512), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column()
    digest: Mapped[str] = mapped_column(String(64), default="")


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"
    __table_args__ = AUTOINCREMENT
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    event_types: Mapped[list[str]] = mapped_column(default=list)
    # Needed in clear to sign; never returned by the API after creation, never logged.
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(200), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event to one endpoint: pending until a 2xx (delivered) or the last attempt (dead)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        AUTOINCREMENT,
    )
    id: Mapped[int] = _big_id()
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_pk: Mapped[int] = mapped_column(
        ForeignKey("outbox_events.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookAttempt(Base):
    """The delivery log: every POST made, with what the receiver answered."""

    __tablename__ = "webhook_attempts"
    __table_args__ = AUTOINCREMENT
    id: Mapped[int] = _big_id()
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    response_excerpt: Mapped[str] = mapped_column(String(500), default="")


class Stranger(Base):
    """Unknown sightings of one face, clustered incrementally: a repeat visitor.

    Once promoted to a person, the row stays as a link (``person_id``) without its centroid.
    """

    __tablename__ = "strangers"
    __table_args__ = (Index("ix_strangers_tenant_seen", "tenant_id", "last_seen"), AUTOINCREMENT)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(64))
    # The mean of the embeddings clustered into it (float32); None once promoted.
    centroid: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    members: Mapped[int] = mapped_column(Integer, default=0)
    sightings: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), default=None, index=True
    )
    promoted_at: Mapped[datetime | None] = mapped_column(default=None)


class NegativeExample(Base):
    """A face an operator said is not this person: no face that close to it matches them."""

    __tablename__ = "negative_examples"
    __table_args__ = AUTOINCREMENT
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)
    sighting_id: Mapped[int | None] = mapped_column(
        BIG_ID, ForeignKey("sightings.id", ondelete="SET NULL"), default=None, index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GalleryAudit(Base):
    """Erasures, promotions and retention passes: ids and counts, never biometric data."""

    __tablename__ = "gallery_audit"
    __table_args__ = (Index("ix_gallery_audit_tenant", "tenant_id", "id"), AUTOINCREMENT)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(32))
    # No foreign keys: the audit outlives what it describes.
    person_id: Mapped[int | None] = mapped_column(Integer, default=None)
    stranger_id: Mapped[int | None] = mapped_column(Integer, default=None)
    key_id: Mapped[int | None] = mapped_column(Integer, default=None)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
