"""/v1/people (with erasure, merging and negative examples), /v1/recognize, /v1/gallery and
its audit."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Response, UploadFile

from facefleet.api.deps import Admin, Reader, State, Uow, WorkerOrAdmin
from facefleet.api.errors import Forbidden, NotFound, PayloadTooLarge
from facefleet.api.errors import error_responses as _errors
from facefleet.api.json_route import StrictJsonRoute
from facefleet.api.people import schemas
from facefleet.api.people.erasure import ErasureService
from facefleet.api.people.faces import UnprocessableImage
from facefleet.api.people.learning import LearningService
from facefleet.api.people.service import GalleryService
from facefleet.api.state import AppState
from facefleet.api.storage.db import audit_repo
from facefleet.protocol.ids import Id, Offset

router = APIRouter(tags=["gallery"], route_class=StrictJsonRoute)
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
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.PersonPage:
    return await GalleryService(state).page(uow, principal, q, offset, limit)


@router.get(
    "/v1/people/{person_id}",
    response_model=schemas.PersonDetail,
    responses=_errors(Forbidden, NotFound),
)
async def get_person(
    person_id: Id, principal: Reader, state: State, uow: Uow
) -> schemas.PersonDetail:
    return await GalleryService(state).get(uow, principal, person_id)


@router.patch(
    "/v1/people/{person_id}",
    response_model=schemas.PersonOut,
    responses=_errors(Forbidden, NotFound),
)
async def update_person(
    person_id: Id, body: schemas.PersonUpdate, principal: Admin, state: State, uow: Uow
) -> schemas.PersonOut:
    return await GalleryService(state).update(uow, principal, person_id, body)


@router.delete(
    "/v1/people/{person_id}",
    status_code=204,
    response_class=Response,
    responses=_errors(Forbidden, NotFound),
)
async def delete_person(person_id: Id, principal: Admin, state: State, uow: Uow) -> Response:
    await GalleryService(state).delete(uow, principal, person_id)
    return Response(status_code=204)


@router.post(
    "/v1/people/{person_id}/erase",
    response_model=schemas.ErasureReceipt,
    responses=_errors(Forbidden, NotFound),
    summary="Erase a person: gallery, sightings, crops, negatives, stranger links; audited",
)
async def erase_person(
    person_id: Id, principal: Admin, state: State, uow: Uow
) -> schemas.ErasureReceipt:
    return await ErasureService(state).erase_person(uow, principal, person_id)


@router.post(
    "/v1/people/{person_id}/merge",
    response_model=schemas.MergeResponse,
    responses=_errors(Forbidden, NotFound),
    summary="Merge a person into another: faces, negatives and sightings move",
)
async def merge_people(
    person_id: Id, body: schemas.MergePeople, principal: Admin, state: State, uow: Uow
) -> schemas.MergeResponse:
    return await LearningService(state).merge(uow, principal, person_id, body)


@router.post(
    "/v1/people/{person_id}/faces/{face_id}/move",
    response_model=schemas.FaceOut,
    responses=_errors(Forbidden, NotFound),
    summary="Move a face to another person (the sighting it came from follows)",
)
async def move_face(
    person_id: Id,
    face_id: Id,
    body: schemas.MoveFace,
    principal: Admin,
    state: State,
    uow: Uow,
) -> schemas.FaceOut:
    return await LearningService(state).move_face(uow, principal, person_id, face_id, body)


@router.get(
    "/v1/people/{person_id}/negatives",
    response_model=list[schemas.NegativeOut],
    responses=_errors(Forbidden, NotFound),
    summary="Faces an operator said are not this person",
)
async def list_negatives(
    person_id: Id, principal: Reader, state: State, uow: Uow
) -> list[schemas.NegativeOut]:
    return await LearningService(state).negatives(uow, principal, person_id)


@router.delete(
    "/v1/people/{person_id}/negatives/{negative_id}",
    status_code=204,
    response_class=Response,
    responses=_errors(Forbidden, NotFound),
    summary="Take back a 'not this person'",
)
async def remove_negative(
    person_id: Id, negative_id: Id, principal: Admin, state: State, uow: Uow
) -> Response:
    await LearningService(state).remove_negative(uow, principal, person_id, negative_id)
    return Response(status_code=204)


@router.get(
    "/v1/gallery/audit",
    response_model=schemas.AuditPage,
    responses=_errors(Forbidden),
    summary="Erasures, promotions, merges and retention passes (ids and counts only)",
)
async def gallery_audit(
    principal: Admin,
    uow: Uow,
    action: Annotated[str | None, Query(max_length=32)] = None,
    offset: Annotated[Offset, Query()] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> schemas.AuditPage:
    rows, total = await audit_repo.page(uow.session, principal.tenant_id, action, offset, limit)
    return schemas.AuditPage(
        items=[schemas.AuditOut.model_validate(r, from_attributes=True) for r in rows],
        total=total,
        offset=offset,
        limit=limit,
    )


@router.post(
    "/v1/people/{person_id}/faces",
    status_code=201,
    response_model=schemas.EnrollResponse,
    responses=_errors(Forbidden, NotFound, PayloadTooLarge),
    summary="Enroll face photos (JPEG/PNG, one face each); all are stored or none",
)
async def add_faces(
    person_id: Id,
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
    person_id: Id, face_id: Id, principal: Admin, state: State, uow: Uow
) -> Response:
    await GalleryService(state).remove_face(uow, principal, person_id, face_id)
    return Response(status_code=204)


@router.get(
    "/v1/people/faces/{face_id}/thumbnail",
    response_class=Response,
    responses=_errors(Forbidden, NotFound) | {200: {"content": {"image/jpeg": {}}}},
)
async def face_thumbnail(face_id: Id, principal: Reader, state: State, uow: Uow) -> Response:
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
