"""/v1/people, /v1/recognize, /v1/gallery and /v1/tenant/settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile

from facefleet.api.deps import Admin, Reader, State, Uow, WorkerOrAdmin
from facefleet.api.errors import Forbidden, NotFound, PayloadTooLarge
from facefleet.api.errors import error_responses as _errors
from facefleet.api.people import schemas
from facefleet.api.people.faces import UnprocessableImage
from facefleet.api.people.service import GalleryService
from facefleet.api.state import AppState

router = APIRouter(tags=["gallery"])
MAX_FILES = 20


async def read_uploads(state: AppState, files: list[UploadFile]) -> list[tuple[str, bytes]]:
    if not files:
        raise UnprocessableImage("no file uploaded: send one or more images in 'files'")
    if len(files) > MAX_FILES:
        raise UnprocessableImage(f"at most {MAX_FILES} photos per request")
    limit = state.settings.max_upload_bytes
    out = []
    for index, upload in enumerate(files):
        name = upload.filename or f"file {index + 1}"
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"{name}: larger than {limit} bytes")
        out.append((name, data))
    return out


@router.post(
    "/v1/people",
    status_code=201,
    response_model=schemas.PersonOut,
    responses=_errors(Forbidden),
)
async def create_person(
    body: schemas.PersonCreate, principal: Admin, state: State, uow: Uow
) -> schemas.PersonOut:
    return await GalleryService(state).create(uow, principal, body)


@router.get("/v1/people", response_model=schemas.PersonPage, responses=_errors(Forbidden))
async def list_people(
    principal: Reader,
    state: State,
    uow: Uow,
    q: Annotated[str | None, Query(max_length=200, description="Part of the name")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.PersonPage:
    return await GalleryService(state).page(uow, principal, q, offset, limit)


@router.get(
    "/v1/people/{person_id}",
    response_model=schemas.PersonDetail,
    responses=_errors(Forbidden, NotFound),
)
async def get_person(
    person_id: int, principal: Reader, state: State, uow: Uow
) -> schemas.PersonDetail:
    return await GalleryService(state).get(uow, principal, person_id)


@router.patch(
    "/v1/people/{person_id}",
    response_model=schemas.PersonOut,
    responses=_errors(Forbidden, NotFound),
)
async def update_person(
    person_id: int, body: schemas.PersonUpdate, principal: Admin, state: State, uow: Uow
) -> schemas.PersonOut:
    return await GalleryService(state).update(uow, principal, person_id, body)


@router.delete(
    "/v1/people/{person_id}",
    status_code=204,
    response_class=Response,
    responses=_errors(Forbidden, NotFound),
)
async def delete_person(person_id: int, principal: Admin, state: State, uow: Uow) -> Response:
    await GalleryService(state).delete(uow, principal, person_id)
    return Response(status_code=204)


@router.post(
    "/v1/people/{person_id}/faces",
    status_code=201,
    response_model=schemas.EnrollResponse,
    responses=_errors(Forbidden, NotFound, PayloadTooLarge),
    summary="Enroll face photos (JPEG/PNG, one face each); all are stored or none",
)
async def add_faces(
    person_id: int,
    principal: Admin,
    state: State,
    uow: Uow,
    files: Annotated[list[UploadFile], File(description="One or more photos")],
) -> schemas.EnrollResponse:
    uploads = await read_uploads(state, files)
    return await GalleryService(state).enroll(uow, principal, person_id, uploads)


@router.delete(
    "/v1/people/{person_id}/faces/{face_id}",
    status_code=204,
    response_class=Response,
    responses=_errors(Forbidden, NotFound),
)
async def remove_face(
    person_id: int, face_id: int, principal: Admin, state: State, uow: Uow
) -> Response:
    await GalleryService(state).remove_face(uow, principal, person_id, face_id)
    return Response(status_code=204)


@router.get(
    "/v1/people/faces/{face_id}/thumbnail",
    response_class=Response,
    responses=_errors(Forbidden, NotFound) | {200: {"content": {"image/jpeg": {}}}},
)
async def face_thumbnail(face_id: int, principal: Reader, state: State, uow: Uow) -> Response:
    jpeg = await GalleryService(state).thumbnail(uow, principal, face_id)
    return Response(jpeg, media_type="image/jpeg")


@router.post(
    "/v1/recognize",
    response_model=schemas.RecognizeResponse,
    responses=_errors(Forbidden, PayloadTooLarge),
    summary="Find every face in a photo and its best match in the gallery",
)
async def recognize(
    principal: Reader,
    state: State,
    uow: Uow,
    file: Annotated[UploadFile, File(description="A JPEG or PNG photo")],
    threshold: Annotated[float | None, Query(gt=0, le=2.0)] = None,
) -> schemas.RecognizeResponse:
    ((name, data),) = await read_uploads(state, [file])
    return await GalleryService(state).recognize(uow, principal, name, data, threshold)


@router.get(
    "/v1/gallery",
    response_model=schemas.GalleryOut,
    responses=_errors(Forbidden),
    summary="The tenant's embeddings, for workers",
)
async def gallery(principal: WorkerOrAdmin, state: State, uow: Uow) -> schemas.GalleryOut:
    return await GalleryService(state).gallery(uow, principal)
