"""/v1/keys: the calling admin key's tenant's API keys (the key itself is shown once)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from facefleet.api.deps import Admin, State, Uow
from facefleet.api.errors import Conflict, Forbidden, NotFound
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.keys import schemas
from facefleet.api.keys.service import InvalidKeyRequest, KeyService
from facefleet.protocol.ids import Id

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=StrictJsonRoute)

KeyId = Annotated[Id, Path(description="The key's id (from the list).")]


@router.get("", response_model=schemas.KeyList, responses=_errors(Forbidden))
async def list_keys(principal: Admin, state: State, uow: Uow) -> schemas.KeyList:
    """Every key of the tenant, revoked and expired ones included; never the key itself."""
    return await KeyService(state).list(uow, principal)


@router.post(
    "",
    status_code=201,
    response_model=schemas.KeyCreated,
    responses=_errors(Forbidden, InvalidKeyRequest),
    summary="Create an API key (the response shows the key, once)",
)
async def create_key(
    body: schemas.KeyCreate, principal: Admin, state: State, uow: Uow
) -> schemas.KeyCreated:
    return await KeyService(state).create(uow, principal, body)


@router.delete(
    "/{key_id}",
    response_model=schemas.KeyOut,
    responses=_errors(Forbidden, NotFound, Conflict),
    summary="Revoke an API key: refused on every replica at once",
)
async def revoke_key(key_id: KeyId, principal: Admin, state: State, uow: Uow) -> schemas.KeyOut:
    return await KeyService(state).revoke(uow, principal, key_id)


@router.post(
    "/{key_id}/rotate",
    response_model=schemas.KeyRotated,
    responses=_errors(Forbidden, NotFound, Conflict, InvalidKeyRequest),
    summary="Replace an API key by a new one; the old one is revoked, or expires after an overlap",
)
async def rotate_key(
    key_id: KeyId, body: schemas.KeyRotate, principal: Admin, state: State, uow: Uow
) -> schemas.KeyRotated:
    return await KeyService(state).rotate(uow, principal, key_id, body)
