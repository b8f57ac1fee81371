"""/v1/tenant/settings: the calling key's tenant."""

from __future__ import annotations

from fastapi import APIRouter

from facefleet.api.deps import Admin, Reader, State, Uow
from facefleet.api.errors import Forbidden
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.tenants import schemas
from facefleet.api.tenants.settings import TenantSettingsService

router = APIRouter(tags=["tenants"], route_class=StrictJsonRoute)


@router.get(
    "/v1/tenant/settings",
    response_model=schemas.TenantSettingsOut,
    responses=_errors(Forbidden),
)
async def tenant_settings(principal: Reader, state: State, uow: Uow) -> schemas.TenantSettingsOut:
    return await TenantSettingsService(state).get(uow, principal)


@router.patch(
    "/v1/tenant/settings",
    response_model=schemas.TenantSettingsOut,
    responses=_errors(Forbidden),
)
async def update_tenant_settings(
    body: schemas.TenantSettingsUpdate, principal: Admin, state: State, uow: Uow
) -> schemas.TenantSettingsOut:
    return await TenantSettingsService(state).update(uow, principal, body)
