"""Tenant settings bodies."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TenantSettingsOut(BaseModel):
    tenant_id: str
    name: str
    match_threshold: float
    gallery_version: int


class TenantSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    match_threshold: float = Field(gt=0, le=2.0)
