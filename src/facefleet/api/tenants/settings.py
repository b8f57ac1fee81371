"""The tenant's settings: the default match threshold, and the gallery version."""

from __future__ import annotations

from facefleet.api.security import Principal
from facefleet.api.state import AppState
from facefleet.api.storage.db import tenants_repo
from facefleet.api.tenants import schemas
from facefleet.api.tenants.gallery_versions import gallery_changed
from facefleet.api.unit_of_work import UnitOfWork


class TenantSettingsService:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def get(self, uow: UnitOfWork, principal: Principal) -> schemas.TenantSettingsOut:
        tenant = await tenants_repo.tenant(uow.session, principal.tenant_id)
        return schemas.TenantSettingsOut(
            tenant_id=tenant.id,
            name=tenant.name,
            match_threshold=tenant.match_threshold,
            gallery_version=tenant.gallery_version,
        )

    async def update(
        self, uow: UnitOfWork, principal: Principal, req: schemas.TenantSettingsUpdate
    ) -> schemas.TenantSettingsOut:
        tenant = await tenants_repo.tenant(uow.session, principal.tenant_id)
        tenant.match_threshold = req.match_threshold
        await uow.session.flush()
        # Workers match with the threshold they loaded: a new one means a reload.
        await gallery_changed(self.state, uow, principal.tenant_id)
        return await self.get(uow, principal)
