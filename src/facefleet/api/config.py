"""Control-plane settings, read from the environment with the prefix ``FACEFLEET_``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from facefleet.api.storage.db.engine import Synchronous
from facefleet.protocol.workers import PRESENCE_FRAME_ALLOWANCE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEFLEET_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Directory for the embedded SQLite database and the default tenant's keys.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; unset means a SQLite file in data_dir.",
    )
    sqlite_synchronous: Synchronous = Field(
        default="FULL",
        description=(
            "SQLite's synchronous pragma: FULL (the default) syncs the write-ahead log at "
            "every commit, so an acknowledged change survives a power loss; NORMAL syncs "
            "only at checkpoints (faster, but the last commits can be lost). "
            "docs/performance.md measures the difference."
        ),
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description=(
            "Fernet keys camera source URLs are encrypted with at rest, comma-separated: the "
            "first encrypts, every one decrypts (a rotation puts the new key first, then runs "
            "`facefleet db reencrypt`). `facefleet db new-key` makes one. Unset, the embedded "
            "mode generates one into data_dir; PostgreSQL or Redis refuse to start."
        ),
    )
    redis_url: str | None = Field(
        default=None,
        description=(
            "Redis URL for the hot store, the event broker and the leader lock shared by "
            "several API replicas; unset means in-process (one replica)."
        ),
    )
    redis_prefix: str = Field(
        default="facefleet:",
        min_length=1,
        description="Prefix of every Redis key this deployment uses (several may share a Redis).",
    )
    leader_lock_ttl: float = Field(
        default=3.0,
        gt=0.5,
        description=(
            "Seconds the leader lock (reaper, flusher, stats digest) outlives its last "
            "renewal; renewed every third of it, so a dead leader is replaced within about "
            "this long plus a second."
        ),
    )
    host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the API binds to.")
    heartbeat_interval: float = Field(
        default=2.0, gt=0, description="Seconds between worker heartbeats (told at registration)."
    )
    heartbeat_jitter: float = Field(
        default=0.1, ge=0, le=0.5, description="Fraction of jitter workers add to the interval."
    )
    lease_ttl: float = Field(
        default=6.0, gt=0, description="Seconds a lease lives without a renewing heartbeat."
    )
    suspect_after_missed: int = Field(
        default=2, ge=1, description="Missed heartbeats after which a worker is suspect."
    )
    reaper_period: float = Field(default=0.5, gt=0, description="Seconds between reaper passes.")
    flush_period: float = Field(
        default=2.0, gt=0, description="Seconds between write-behind flushes of liveness."
    )
    retry_after: float = Field(
        default=2.0, gt=0, description="Seconds a worker is told to wait when no camera is free."
    )
    presence_beat: float = Field(
        default=0.5,
        gt=0,
        description="Seconds between the bytes of a worker's presence stream: the worker "
        "fences itself when they stop, the control plane expires it when the stream breaks.",
    )
    presence_grace: float = Field(
        default=2.0,
        gt=0,
        description="Seconds after a worker's presence stream broke off (its process died) "
        "before it counts as gone and its cameras move; it fences itself sooner.",
    )
    presence_wait: float = Field(
        default=60.0, gt=0, description="Seconds a presence stream lasts before it is renewed."
    )
    failing_backoff: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a camera whose stream failed waits before it is offered again; "
        "doubled after each further failure in a row.",
    )
    failing_backoff_max: float = Field(
        default=300.0, gt=0, description="The longest wait of a failing camera, in seconds."
    )
    anti_entropy_every: int = Field(
        default=20,
        ge=1,
        description="Reaper passes between full comparisons of the database's leases and "
        "commands with the hot store (changes that failed to reach it are repaired sooner).",
    )
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Largest request body accepted, in bytes."
    )
    max_upload_bytes: int = Field(
        default=16 * 1_048_576, gt=0, description="Largest photo accepted for the gallery."
    )
    max_upload_request_bytes: int = Field(
        default=64 * 1_048_576,
        gt=0,
        description="Largest request body on the photo upload routes (several photos).",
    )
    max_image_pixels: int = Field(
        default=25_000_000, gt=0, description="Largest photo accepted, in pixels."
    )
    opentelemetry: bool = Field(
        default=False,
        description=(
            "FastAPI's native OpenTelemetry traces, metrics and logs, for a process whose "
            "providers are configured (e.g. FASTAPI_OTEL_AUTO_CONFIGURE=true). Off, requests "
            "skip looking for providers, which costs a heartbeat about a tenth of its time."
        ),
    )
    auth_cache_seconds: float = Field(
        default=30.0, ge=0, description="Seconds a verified API key is cached in memory."
    )
    rate_limit: float = Field(
        default=500.0,
        ge=0,
        description=(
            "Requests a second each API key may make outside the worker budget (a token "
            "bucket shared by the replicas; 0: no limit). Over it: 429 with Retry-After."
        ),
    )
    rate_limit_burst: int = Field(
        default=2_000, ge=1, description="Requests a key may make at once before rate_limit holds."
    )
    worker_rate_limit: float = Field(
        default=20_000.0,
        ge=0,
        description=(
            "Requests a second each API key may make for registration, heartbeats, presence "
            "and camera requests (one worker key serves a whole fleet: 10,000 workers at the "
            "default interval send 5,000 heartbeats a second; 0: no limit)."
        ),
    )
    worker_rate_limit_burst: int = Field(
        default=40_000,
        ge=1,
        description="Worker-budget requests a key may make at once (a fleet re-registering).",
    )
    metrics_key: SecretStr | None = Field(
        default=None,
        description=(
            "When set, GET /metrics answers only 'Authorization: Bearer <this key>' (a "
            "Prometheus bearer_token). Unset, /metrics is open: serve it on an internal "
            "network only. Tenant keys never open it: the metrics cover every tenant."
        ),
    )
    bootstrap_default_tenant: bool = Field(
        default=True,
        description="Create a 'default' tenant with keys on first start (embedded mode).",
    )
    run_background: bool = Field(
        default=True, description="Run the reaper and flusher in this process."
    )

    public_url: str | None = Field(
        default=None,
        description=(
            "Address operators reach this API at (e.g. https://faces.example.com): makes the "
            "crop URLs in MQTT and webhook payloads absolute; unset, they are paths."
        ),
    )
    mqtt_url: str | None = Field(
        default=None,
        description=(
            "MQTT broker events are published to (mqtt://[user:password@]host[:port], "
            "mqtts:// for TLS); unset means no MQTT."
        ),
    )
    mqtt_topic_prefix: str = Field(
        default="facefleet",
        pattern=r"^[^#+/\s][^#+\s]*[^#+/\s]$|^[^#+/\s]$",
        description="First level of every topic facefleet publishes (no wildcards, no edge '/').",
    )
    mqtt_discovery_prefix: str = Field(
        default="homeassistant",
        pattern=r"^[^#+/\s][^#+\s]*[^#+/\s]$|^[^#+/\s]$",
        description="Home Assistant's MQTT discovery prefix, where the entity configs go.",
    )
    mqtt_discovery: bool = Field(
        default=True,
        description="Publish Home Assistant discovery configs (a sensor per camera, per person).",
    )
    mqtt_keepalive: int = Field(
        default=15, ge=5, le=600, description="Seconds of the MQTT keepalive (and last will)."
    )
    mqtt_late_after: float = Field(
        default=10.0,
        gt=0,
        description=(
            "An event published this many seconds after it happened (a broker outage) is "
            "marked late and never updates a camera's last person or a presence sensor."
        ),
    )
    mqtt_presence_seconds: int = Field(
        default=60,
        ge=1,
        description="Seconds a person's presence sensor stays on after their last sighting.",
    )
    mqtt_discovery_refresh: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between checks for new, renamed or removed cameras and people.",
    )
    integrations_poll_period: float = Field(
        default=0.5,
        gt=0,
        description=(
            "Seconds between looks at the MQTT and webhook outboxes for what other replicas "
            "recorded (this replica's own events are sent at once)."
        ),
    )
    integrations_retention_days: float = Field(
        default=7.0,
        gt=0,
        description="Days sent events and delivered webhooks are kept (dead letters stay).",
    )
    webhook_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a webhook receiver has to answer."
    )
    webhook_max_attempts: int = Field(
        default=12,
        ge=1,
        le=100,
        description="Attempts of one webhook delivery before it goes to the dead letters.",
    )
    webhook_retry_base: float = Field(
        default=10.0,
        gt=0,
        description="Seconds before the first webhook retry; each later one waits twice as long.",
    )
    webhook_retry_max: float = Field(
        default=3600.0, gt=0, description="Longest wait between two webhook attempts, in seconds."
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, le=256, description="Webhook deliveries sent at the same time."
    )

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("mqtt_url must look like mqtt://host[:port] or mqtts://host[:port]")
        parts.port  # noqa: B018  (raises ValueError for a port out of range)
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("public_url must be an http:// or https:// address")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _check_timing(self) -> Settings:
        if self.lease_ttl <= self.heartbeat_interval:
            raise ValueError("lease_ttl must be longer than heartbeat_interval")
        if self.presence_grace < 2 * self.presence_beat + PRESENCE_FRAME_ALLOWANCE:
            raise ValueError(
                "presence_grace must leave a worker time to notice its presence stream stopped "
                f"(2 x presence_beat) and finish a frame ({PRESENCE_FRAME_ALLOWANCE}s)"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'facefleet.db').resolve()}"

    @property
    def embedded(self) -> bool:
        """One process on a SQLite file: no shared database, no Redis."""
        backend = make_url(self.resolved_database_url).get_backend_name()
        return not self.redis_url and backend == "sqlite"

    @property
    def suspect_after(self) -> float:
        return self.heartbeat_interval * self.suspect_after_missed
