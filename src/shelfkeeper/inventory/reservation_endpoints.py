"""`/api/v1/{tenantId}/reservations`: checkout holds on stock, with an expiry.

Viewers read; clerks (and admins) create, release and extend holds.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response

from shelfkeeper.auth.dependencies import TENANT_SCOPED_PROBLEMS, Operator, Reader, TenantSession
from shelfkeeper.inventory import reservation_service as service
from shelfkeeper.inventory.errors import InsufficientStock, ReservationNotFound, ReservationNotHeld
from shelfkeeper.inventory.reservation_schemas import (
    Reservation,
    ReservationCreate,
    ReservationExtend,
    ReservationStatus,
)
from shelfkeeper.kit.conditional import check_not_modified, expected_version, set_etag
from shelfkeeper.kit.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReuse
from shelfkeeper.kit.pagination import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from shelfkeeper.kit.problems import VersionMismatch, problem_responses
from shelfkeeper.kit.routing import TransactionalRoute

router = APIRouter(
    prefix="/{tenant_id}/reservations",
    tags=["Reservations"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)

IfMatch = Annotated[str | None, Header(description='Current ETag (`"<version>"`); stale → 412.')]
IfNoneMatch = Annotated[str | None, Header()]
WRITE_PROBLEMS = (IdempotencyKeyInFlight, IdempotencyKeyReuse)


@router.post(
    "",
    status_code=201,
    summary="Hold stock for a checkout",
    description="Reserves every line or none. A line without `location_id` is placed by the "
    "server: one active location that can fill it (highest `priority`, then most "
    "available), else split across locations in that order. Demand for the same level is "
    "summed. Short → 409 `insufficient-stock` whose `lines` list every short line "
    "(`index`, `variant_id`, `location_id` if named, `requested`, `available`); nothing is "
    "reserved then. Holds past their expiry never count against this request.",
    responses=problem_responses(InsufficientStock, *WRITE_PROBLEMS),
)
async def create_reservation(
    body: ReservationCreate, principal: Operator, db: TenantSession, response: Response
) -> Reservation:
    reservation = await service.create(db, principal, body=body)
    set_etag(response, reservation.version)
    response.headers["Location"] = f"/api/v1/{principal.tenant_id}/reservations/{reservation.id}"
    return reservation


@router.get("", summary="List holds")
async def list_reservations(
    principal: Reader,
    db: TenantSession,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[
        str, Query(description="`created_at` or `expires_at`; `-` descends.")
    ] = "created_at",
    status: Annotated[
        ReservationStatus | None,
        Query(description="Status as shown: a hold past its expiry is `expired`."),
    ] = None,
) -> Page[Reservation]:
    return await service.list_reservations(
        db, principal, sort=sort, cursor=cursor, limit=limit, status=status
    )


@router.get(
    "/{reservation_id}",
    summary="Read a hold",
    responses={304: {"description": "Not modified"}, **problem_responses(ReservationNotFound)},
)
async def get_reservation(
    reservation_id: UUID,
    principal: Reader,
    db: TenantSession,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> Reservation:
    reservation, settled = await service.read(db, principal, reservation_id=reservation_id)
    if settled:
        check_not_modified(if_none_match, reservation.version)
    set_etag(response, reservation.version)
    return reservation


@router.post(
    "/{reservation_id}/release",
    summary="Release a hold",
    description="Gives the held units back; status `released`. Only a held reservation "
    "(not past its expiry) → else 409 `reservation-not-held`.",
    responses=problem_responses(
        ReservationNotFound, ReservationNotHeld, VersionMismatch, *WRITE_PROBLEMS
    ),
)
async def release_reservation(
    reservation_id: UUID,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Reservation:
    reservation = await service.release(
        db, principal, reservation_id=reservation_id, expected_version=expected_version(if_match)
    )
    set_etag(response, reservation.version)
    return reservation


@router.post(
    "/{reservation_id}/extend",
    summary="Extend a hold",
    description="The hold now expires `ttl_seconds` from now. A hold past its expiry (or "
    "no longer held) cannot be extended → 409 `reservation-not-held`.",
    responses=problem_responses(
        ReservationNotFound, ReservationNotHeld, VersionMismatch, *WRITE_PROBLEMS
    ),
)
async def extend_reservation(
    reservation_id: UUID,
    body: ReservationExtend,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Reservation:
    reservation = await service.extend(
        db,
        principal,
        reservation_id=reservation_id,
        ttl_seconds=body.ttl_seconds,
        expected_version=expected_version(if_match),
    )
    set_etag(response, reservation.version)
    return reservation
