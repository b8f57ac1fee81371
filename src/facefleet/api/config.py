"""Control-plane settings, read from the environment with the prefix ``FACEFLEET_``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    bootstrap_default_tenant: bool = Field(
        default=True,
        description="Create a 'default' tenant with keys on first start (embedded mode).",
    )
    run_background: bool = Field(
        default=True, description="Run the reaper and flusher in this process."
    )

    @model_validator(mode="after")
    def _check_timing(self) -> Settings:
        if self.lease_ttl <= self.heartbeat_interval:
            raise ValueError("lease_ttl must be longer than heartbeat_interval")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'facefleet.db').resolve()}"

    @property
    def suspect_after(self) -> float:
        return self.heartbeat_interval * self.suspect_after_missed
