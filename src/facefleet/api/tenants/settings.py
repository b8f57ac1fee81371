"""The tenant's settings: matching (threshold, ratio), retention, and the gallery version."""

from __future__ import annotations

from facefleet.api.errors import FacefleetError
from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import tenants_repo
from facefleet.api.tenants import schemas
from facefleet.api.tenants.gallery_versions import gallery_changed
from facefleet.api.unit_of_work import UnitOfWork

# Workers match with what they loaded: changing these means a gallery reload.
MATCHING = ("match_threshold", "match_ratio")
RETENTION = ("sighting_retention_days", "crop_retention_days")


class InvalidSettings(FacefleetError):
    status_code = 422


class TenantSettingsService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def get(self, uow: UnitOfWork, principal: Principal) -> schemas.TenantSettingsOut:
        tenant = await tenants_repo.tenant(uow.session, principal.tenant_id)
        return schemas.TenantSettingsOut(
            tenant_id=tenant.id,
            name=tenant.name,
            match_threshold=tenant.match_threshold,
            match_ratio=tenant.match_ratio,
            sighting_retention_days=tenant.sighting_retention_days,
            crop_retention_days=tenant.crop_retention_days,
            gallery_version=tenant.gallery_version,
        )

    async def update(
        self, uow: UnitOfWork, principal: Principal, req: schemas.TenantSettingsUpdate
    ) -> schemas.TenantSettingsOut:
        tenant = await tenants_repo.tenant(uow.session, principal.tenant_id)
        changes = req.model_dump(exclude_unset=True)
        for field in MATCHING:
            if field in changes and changes[field] is None:
                raise InvalidSettings(f"{field} cannot be null")
        for field, value in changes.items():
            setattr(tenant, field, value)
        await uow.session.flush()
        if any(field in changes for field in MATCHING):
            await gallery_changed(self.state, uow, principal.tenant_id)
        return await self.get(uow, principal)
