"""`/api/v1/tenants`: the tenant lifecycle, for platform operators."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from shelfkeeper.auth.dependencies import PlatformAdministrator, PlatformSession
from shelfkeeper.kit.conditional import check_not_modified, expected_version, set_etag
from shelfkeeper.kit.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReuse
from shelfkeeper.kit.pagination import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from shelfkeeper.kit.problems import Forbidden, VersionMismatch, problem_responses
from shelfkeeper.kit.routing import TransactionalRoute
from shelfkeeper.tenant import service
from shelfkeeper.tenant.schemas import TENANT_ID_PATTERN, Tenant, TenantCreate, TenantUpdate

router = APIRouter(
    prefix="/tenants",
    tags=["Tenants"],
    route_class=TransactionalRoute,
    responses=problem_responses(Forbidden),
)

TenantIdPath = Annotated[
    str, Path(pattern=TENANT_ID_PATTERN, description="The tenant's id.", examples=["acme"])
]


@router.post(
    "",
    status_code=201,
    summary="Create a tenant",
    responses=problem_responses(service.TenantExists, IdempotencyKeyInFlight, IdempotencyKeyReuse),
)
async def create_tenant(
    body: TenantCreate, principal: PlatformAdministrator, db: PlatformSession, response: Response
) -> Tenant:
    tenant = await service.create(db, body=body)
    set_etag(response, tenant.version)
    response.headers["Location"] = f"/api/v1/tenants/{tenant.id}"
    return tenant


@router.get("", summary="List tenants")
async def list_tenants(
    principal: PlatformAdministrator,
    db: PlatformSession,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[str, Query(description="`id`, `created_at`, or `-` for descending.")] = "id",
) -> Page[Tenant]:
    return await service.list_tenants(db, sort=sort, cursor=cursor, limit=limit)


@router.get(
    "/{tenant_id}",
    summary="Read a tenant",
    responses={304: {"description": "Not modified"}, **problem_responses(service.TenantNotFound)},
)
async def get_tenant(
    tenant_id: TenantIdPath,
    principal: PlatformAdministrator,
    db: PlatformSession,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Tenant:
    tenant = await service.get(db, tenant_id=tenant_id)
    check_not_modified(if_none_match, tenant.version)
    set_etag(response, tenant.version)
    return tenant


@router.patch(
    "/{tenant_id}",
    summary="Update a tenant's name, settings or status",
    responses=problem_responses(
        service.TenantNotFound, VersionMismatch, IdempotencyKeyInFlight, IdempotencyKeyReuse
    ),
)
async def update_tenant(
    tenant_id: TenantIdPath,
    body: TenantUpdate,
    principal: PlatformAdministrator,
    db: PlatformSession,
    response: Response,
    if_match: Annotated[str | None, Header()] = None,
) -> Tenant:
    tenant = await service.update(
        db, tenant_id=tenant_id, body=body, expected_version=expected_version(if_match)
    )
    set_etag(response, tenant.version)
    return tenant
