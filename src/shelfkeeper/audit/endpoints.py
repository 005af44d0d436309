"""`/api/v1/{tenantId}/audit-log`: the tenant's audit trail (admins only), the filters
the platform trail's reading shares with it (`Filters`), and the hook that audits every
mutating request, a tenant's or the platform's (`app.state.auditor`, called by
`TransactionalRoute`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator

from shelfkeeper.audit import service
from shelfkeeper.audit.schemas import AuditEntry
from shelfkeeper.auth.dependencies import TENANT_SCOPED_PROBLEMS, Administrator, TenantSession
from shelfkeeper.auth.principal import Permission, Principal
from shelfkeeper.db.database import Connection
from shelfkeeper.kit import context, recording
from shelfkeeper.kit.pagination import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from shelfkeeper.kit.routing import TransactionalRoute

TIMESTAMP_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _timestamp_text(value: object) -> object:
    """Only a written-out timestamp: not the number of seconds pydantic would also take."""
    if value is not None and not (isinstance(value, str) and TIMESTAMP_TEXT.match(value)):
        raise ValueError("an RFC 3339 timestamp, e.g. 2026-12-04T10:00:00Z")
    return value


def audit_filter(
    entity_type: Annotated[
        str | None, Query(max_length=100, description="e.g. `location`, `item`, `order`.")
    ] = None,
    entity_id: Annotated[str | None, Query(max_length=200)] = None,
    actor: Annotated[
        str | None, Query(max_length=300, description="e.g. `user:alice`, `api_key:<id>`.")
    ] = None,
    after: Annotated[
        datetime | None,
        Query(description="Only entries strictly after this time (RFC 3339; UTC if no zone)."),
        BeforeValidator(_timestamp_text),
    ] = None,
) -> service.AuditFilter:
    return service.AuditFilter(
        entity_type=entity_type, entity_id=entity_id, actor=actor, after=after
    )


Filters = Annotated[service.AuditFilter, Depends(audit_filter)]
"""The query parameters of every trail's listing."""

router = APIRouter(
    prefix="/{tenant_id}/audit-log",
    tags=["Audit"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)


@router.get(
    "",
    summary="List audit entries",
    description="Every change made in the tenant, newest first: who (`actor`, `role`), "
    "when, from which request (`request_id`, `client_address`), what (`action`, "
    "`entity_type`, `entity_id`) and the changed fields (`before`, `after`), with personal "
    "data and secrets redacted. Admins only.",
)
async def list_audit_entries(
    principal: Administrator,
    db: TenantSession,
    filters: Filters,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[AuditEntry]:
    return await service.list_entries(db, principal, cursor=cursor, limit=limit, filters=filters)


# --- auditing every mutating request ------------------------------------------------------


def _singular(segment: str) -> str:
    name = segment.replace("-", "_")
    if name == "inventory":
        return "item"
    if name.endswith("ies"):
        return name[:-3] + "y"
    if name.endswith("s") and not name.endswith("ss"):
        return name[:-1]
    return name


def _response_id(response: Response) -> str | None:
    body = getattr(response, "body", b"")
    if not body or not response.headers.get("content-type", "").startswith("application/json"):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    identifier = document.get("id") if isinstance(document, dict) else None
    return str(identifier) if isinstance(identifier, str | int) else None


def generic_change(request: Request, response: Response) -> recording.Change | None:
    """The change a request made, told by its route: the operation's name as the action;
    as the entity, what its response's `id` names if it created something (`POST` ending
    in a literal segment), or else the last id of its path; the entity type from the
    literal segments around it (`/orders/{order_id}/returns` → `order_return`)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return None
    segments = [part for part in route.path.split("/") if part]
    if "{tenant_id}" in segments:
        segments = segments[segments.index("{tenant_id}") + 1 :]
    literals = [part for part in segments if not part.startswith("{")]
    if not literals:
        return None
    created = request.method == "POST" and not segments[-1].startswith("{")
    entity_id = _response_id(response) if created else None
    if entity_id is None:
        parameters = [part[1:-1] for part in segments if part.startswith("{")]
        if parameters:
            value = request.path_params.get(parameters[-1])
            entity_id = None if value is None else str(value)
            # the entity is what the last id names: drop the literals after it
            last = max(index for index, part in enumerate(segments) if part.startswith("{"))
            literals = [part for part in segments[:last] if not part.startswith("{")] or literals
    entity_type = "_".join(_singular(part) for part in literals[-2:])
    return recording.Change(entity_type, entity_id, route.name)


def generic_platform_change(request: Request, response: Response) -> recording.Change | None:
    """The change a platform request made that its service did not describe: the
    operation's name on the tenant of its path (or the one its response names)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return None
    tenant_id = request.path_params.get("tenant_id")
    entity_id = str(tenant_id) if tenant_id is not None else _response_id(response)
    return recording.Change(service.TENANT_ENTITY, entity_id, route.name)


async def audit_request(
    request: Request,
    connection: Connection,
    response: Response,
    changes: Sequence[recording.Change],
) -> None:
    """Write the audit entries of a successful mutating request, in its transaction: a
    tenant request's in the tenant's trail, a platform operator's (`/api/v1/tenants...`)
    in the platform trail, each entry naming the tenant of the path or the one created.

    Requests that entered no tenant and are no platform operation (routes of their own)
    are in no trail.
    """
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        return
    origin = service.Origin.of(
        principal,
        request_id=getattr(request.state, "request_id", None),
        client=request.client.host if request.client is not None else None,
    )
    tenant_id = request.path_params.get("tenant_id")
    entered = context.bound_fields(request.scope).get("tenant")
    if principal.tenant_id is None and principal.can(Permission.PLATFORM) and entered is None:
        await service.write_platform(
            connection,
            origin=origin,
            changes=changes,
            tenant_id=tenant_id if isinstance(tenant_id, str) else None,
            otherwise=generic_platform_change(request, response),
        )
        return
    if principal.tenant_id is None or principal.tenant_id != tenant_id or entered != tenant_id:
        return
    await service.write(
        connection,
        tenant_id=tenant_id,
        origin=origin,
        changes=changes,
        otherwise=generic_change(request, response),
    )
