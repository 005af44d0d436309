"""`/api/v1/tenants`: the tenant lifecycle, for platform operators, and the platform audit
trail of each tenant (`/tenants/{tenantId}/audit-log`).

Every mutation here is audited in the platform trail by the route's auditor (the service
describes it). The export streams (it may be large), so it is not a `TransactionalRoute`:
like the event stream, it authorizes in a short transaction of its own, which also records
the export in the platform trail, then reads in another that lasts as long as the client
reads (`export_router`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse

from shelfkeeper.audit import service as audit_service
from shelfkeeper.audit.endpoints import Filters
from shelfkeeper.audit.schemas import PlatformAuditEntry
from shelfkeeper.auth.dependencies import (
    PlatformAdministrator,
    PlatformSession,
    authenticate,
    bearer,
    platform_principal,
)
from shelfkeeper.db.database import Database
from shelfkeeper.kit import recording
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

export_router = APIRouter(
    prefix="/tenants",
    tags=["Tenants"],
    responses=problem_responses(Forbidden),
    dependencies=[Depends(bearer)],  # the security scheme, in the OpenAPI document
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


@router.delete(
    "/{tenant_id}",
    status_code=204,
    summary="Offboard a tenant",
    description="Deletes the tenant and every row of every table it owns (orders, stock, "
    "events, API keys, idempotency keys, audit trail, ...) and destroys its data keys, so "
    "that its encrypted personal data cannot be read from any backup taken afterwards. "
    "Then `GET` answers 404. Export first (`/export`) if the data is to be kept.",
    responses=problem_responses(service.TenantNotFound),
)
async def delete_tenant(
    tenant_id: TenantIdPath, principal: PlatformAdministrator, db: PlatformSession
) -> None:
    await service.delete(db, tenant_id=tenant_id)


@router.get(
    "/{tenant_id}/audit-log",
    summary="List a tenant's platform audit entries",
    description="The platform operations that concerned the tenant, newest first: its "
    "creation (by the API or the command line), updates, suspensions and reactivations "
    "(with the changed fields before and after), exports and its deletion (how many rows "
    "went, how many data keys were destroyed). Readable after the tenant is deleted; a "
    "tenant that never existed has no entries. The same filters and pagination as a "
    "tenant's own `/{tenantId}/audit-log`, which this is not: that one is the tenant's "
    "trail, for its admins.",
)
async def list_platform_audit_entries(
    tenant_id: TenantIdPath,
    principal: PlatformAdministrator,
    db: PlatformSession,
    filters: Filters,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[PlatformAuditEntry]:
    return await audit_service.list_platform_entries(
        db, tenant_id=tenant_id, cursor=cursor, limit=limit, filters=filters
    )


NDJSON = "application/x-ndjson"


@export_router.get(
    "/{tenant_id}/export",
    summary="Export everything a tenant owns",
    description="Streams the tenant and every row of every table it owns, personal data "
    'decrypted, from one consistent snapshot. `format=json` (default): `{"tenant": {...}, '
    '"tables": {"<table>": [rows...]}}`; `format=ndjson` (or `Accept: application/x-ndjson`): '
    'one `{"table", "row"}` object per line, the tenant first. Data keys and stored '
    "idempotent responses are left out; credentials (callback secrets) are null. Each "
    "export is recorded in the platform audit trail (action `export`) before it streams.",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The export.",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                NDJSON: {"schema": {"type": "string"}},
            },
        },
        **problem_responses(service.TenantNotFound),
    },
)
async def export_tenant(
    tenant_id: TenantIdPath,
    request: Request,
    format: Annotated[
        Literal["json", "ndjson"] | None,
        Query(description="`json` or `ndjson`; unset: by `Accept`, else `json`."),
    ] = None,
) -> StreamingResponse:
    database: Database = request.app.state.database
    ndjson = format == "ndjson" or (format is None and NDJSON in request.headers.get("accept", ""))
    extension = "ndjson" if ndjson else "json"
    async with database.transaction() as connection:
        request.state.connection = connection
        try:
            principal = await authenticate(request, await bearer(request))
            await platform_principal(request, principal)
            await service.get(connection, tenant_id=tenant_id)
            # An offboarding step worth a record: who took the tenant's data, and when.
            await audit_service.write_platform(
                connection,
                origin=audit_service.Origin.of(
                    principal,
                    request_id=getattr(request.state, "request_id", None),
                    client=request.client.host if request.client is not None else None,
                ),
                tenant_id=tenant_id,
                changes=[
                    recording.Change(
                        service.ENTITY, tenant_id, "export", after={"format": extension}
                    )
                ],
            )
        finally:
            del request.state.connection
    return StreamingResponse(
        service.export(database, tenant_id=tenant_id, ndjson=ndjson),
        media_type=NDJSON if ndjson else "application/json",
        headers={"Content-Disposition": f'attachment; filename="{tenant_id}.{extension}"'},
    )
