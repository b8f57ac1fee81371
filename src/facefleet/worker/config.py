"""Worker settings, read from the environment with the prefix ``FACEFLEET_WORKER_``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACEFLEET_WORKER_", extra="ignore")

    api_url: str = Field(default="http://127.0.0.1:8000", description="Control plane URL.")
    api_key: str = Field(default="", description="The tenant's worker API key.")
    capacity: int = Field(default=1, ge=1, le=64, description="Cameras this worker runs.")
    labels: list[str] = Field(default_factory=list, description="Labels cameras may require.")
    fence_margin: float = Field(
        default=1.0,
        gt=0,
        description="Seconds before the lease TTL at which an unconfirmed worker stops "
        "processing (self-fencing).",
    )
    shutdown_timeout: float = Field(
        default=10.0, gt=0, description="Bound on a graceful shutdown, in seconds."
    )
    request_timeout: float = Field(default=5.0, gt=0, description="Timeout of each API call.")
