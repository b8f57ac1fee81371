"""The operator dashboard: its static files (``api/web/``, no build step) under ``/ui``, its
page at ``/``, and ``GET /v1/whoami``, which tells a client what its key may do."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from facefleet.api.deps import CurrentPrincipal, Uow
from facefleet.api.errors import Unauthorized
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.storage.db import tenants_repo

WEB_DIR = Path(__file__).parent / "web"

router = APIRouter(route_class=StrictJsonRoute)
# Served after every API route, and only under /ui, so unknown API paths keep their 404.
router.frontend("/ui", directory=WEB_DIR, fallback=None)


class WhoAmI(BaseModel):
    tenant_id: str
    tenant_name: str
    role: Literal["admin", "worker", "viewer"]
    can_write: bool = Field(description="Whether this key may change the fleet (admin keys).")


@router.get("/", include_in_schema=False)
async def dashboard() -> FileResponse:
    # Revalidated on every load, so an upgraded control plane serves its new dashboard.
    return FileResponse(WEB_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get(
    "/v1/whoami",
    response_model=WhoAmI,
    responses=_errors(Unauthorized),
    tags=["tenants"],
    summary="The calling key's tenant and role",
)
async def whoami(principal: CurrentPrincipal, uow: Uow) -> WhoAmI:
    tenant = await tenants_repo.tenant(uow.session, principal.tenant_id)
    return WhoAmI(
        tenant_id=tenant.id,
        tenant_name=tenant.name,
        role=principal.role.value,
        can_write=principal.is_admin,
    )
