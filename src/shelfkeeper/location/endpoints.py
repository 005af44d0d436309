"""`/api/v1/{tenantId}/locations`: warehouses and stores.

Everyone in the tenant reads; creating, changing and deleting locations is tenant
configuration, for admins.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response

from shelfkeeper.auth.dependencies import (
    TENANT_SCOPED_PROBLEMS,
    Administrator,
    Reader,
    TenantSession,
)
from shelfkeeper.kit.conditional import check_not_modified, expected_version, set_etag
from shelfkeeper.kit.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReuse
from shelfkeeper.kit.pagination import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from shelfkeeper.kit.problems import VersionMismatch, problem_responses
from shelfkeeper.kit.routing import TransactionalRoute
from shelfkeeper.location import service
from shelfkeeper.location.schemas import Location, LocationCreate, LocationKind, LocationUpdate

router = APIRouter(
    prefix="/{tenant_id}/locations",
    tags=["Locations"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)

IfMatch = Annotated[str | None, Header(description='Current ETag (`"<version>"`); stale → 412.')]


@router.post(
    "",
    status_code=201,
    summary="Create a location",
    responses=problem_responses(
        service.DuplicateLocationCode, IdempotencyKeyInFlight, IdempotencyKeyReuse
    ),
)
async def create_location(
    body: LocationCreate, principal: Administrator, db: TenantSession, response: Response
) -> Location:
    location = await service.create(db, principal, body=body)
    set_etag(response, location.version)
    response.headers["Location"] = f"/api/v1/{principal.tenant_id}/locations/{location.id}"
    return location


@router.get("", summary="List locations")
async def list_locations(
    principal: Reader,
    db: TenantSession,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[
        str, Query(description="`created_at`, `updated_at`, `code`, `name`; `-` descends.")
    ] = "created_at",
    kind: LocationKind | None = None,
    active: bool | None = None,
) -> Page[Location]:
    return await service.list_locations(
        db, principal, sort=sort, cursor=cursor, limit=limit, kind=kind, active=active
    )


@router.get(
    "/{location_id}",
    summary="Read a location",
    responses={304: {"description": "Not modified"}, **problem_responses(service.LocationNotFound)},
)
async def get_location(
    location_id: UUID,
    principal: Reader,
    db: TenantSession,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Location:
    location = await service.get(db, principal, location_id=location_id)
    check_not_modified(if_none_match, location.version)
    set_etag(response, location.version)
    return location


@router.patch(
    "/{location_id}",
    summary="Update a location",
    responses=problem_responses(
        service.LocationNotFound,
        service.DuplicateLocationCode,
        VersionMismatch,
        IdempotencyKeyInFlight,
        IdempotencyKeyReuse,
    ),
)
async def update_location(
    location_id: UUID,
    body: LocationUpdate,
    principal: Administrator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Location:
    location = await service.update(
        db,
        principal,
        location_id=location_id,
        body=body,
        expected_version=expected_version(if_match),
    )
    set_etag(response, location.version)
    return location


@router.delete(
    "/{location_id}",
    status_code=204,
    summary="Delete a location",
    responses=problem_responses(
        service.LocationNotFound, service.LocationNotEmpty, VersionMismatch
    ),
)
async def delete_location(
    location_id: UUID, principal: Administrator, db: TenantSession, if_match: IfMatch = None
) -> None:
    await service.delete(
        db, principal, location_id=location_id, expected_version=expected_version(if_match)
    )
