"""Tenant lifecycle rules, and entering a tenant for a tenant-scoped request."""

from __future__ import annotations

import logging

from pydantic import ValidationError

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.kit.pagination import TEXT_FIELD, TIMESTAMP_FIELD, Page, SortField, keyset, page_of
from shelfkeeper.kit.problems import Conflict, Forbidden, NotFound, VersionMismatch
from shelfkeeper.tenant import repository
from shelfkeeper.tenant.schemas import (
    RateLimit,
    Tenant,
    TenantCreate,
    TenantSettings,
    TenantUpdate,
)

logger = logging.getLogger("shelfkeeper.tenant")

SORT_FIELDS = {
    "id": SortField("id", TEXT_FIELD),
    "created_at": SortField("created_at", TIMESTAMP_FIELD),
}


class TenantNotFound(NotFound):
    title = "Tenant not found"


class TenantExists(Conflict):
    slug = "tenant-exists"
    title = "A tenant with this id already exists"


class TenantSuspended(Forbidden):
    slug = "tenant-suspended"
    title = "Tenant suspended"


def _tenant(row: Record) -> Tenant:
    return Tenant(
        id=row["id"],
        name=row["name"],
        settings=TenantSettings.model_validate(row["settings"]),
        status=row["status"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def default_low_stock_threshold_sql(tenant_parameter: str) -> str:
    """A scalar SQL expression: the tenant's default low-stock threshold (NULL if unset).

    For statements of other domains that resolve a stock level's threshold inside the
    database, so that a stock change needs no round trip of its own to learn it; where the
    setting is kept stays this domain's business. `tenant_parameter` is the statement's
    placeholder (or expression) for the tenant id.
    """
    return (
        "(SELECT (tenant_settings.settings ->> 'low_stock_threshold')::int "
        f"FROM tenant AS tenant_settings WHERE tenant_settings.id = {tenant_parameter})"
    )


async def enter(db: Connection, tenant_id: str) -> RateLimit | None:
    """Bind the transaction to an active tenant; return the tenant's own rate limit (None
    when it sets none and the service default applies).

    Raises TenantNotFound (404) or TenantSuspended (403).
    """
    row = await repository.enter(db, tenant_id)
    if row is None:
        raise TenantNotFound(f"No tenant `{tenant_id}`.")
    if row["status"] != "active":
        raise TenantSuspended(f"Tenant `{tenant_id}` is suspended.")
    stored = row["rate_limit"]
    if stored is None:
        return None
    try:
        return RateLimit.model_validate(stored)
    except ValidationError:
        # Settings are validated when written; an unreadable one must not lock the tenant
        # out with 500s: the service default applies instead.
        logger.warning("tenant %s: unreadable rate_limit setting, using the default", tenant_id)
        return None


async def create(db: Connection, *, body: TenantCreate) -> Tenant:
    """Create a tenant. Raises TenantExists (409)."""
    try:
        row = await repository.insert(
            db,
            tenant_id=body.id,
            name=body.name,
            settings=body.settings.model_dump(exclude_none=True),
        )
    except repository.DuplicateTenant as error:
        raise TenantExists(f"Tenant `{body.id}` already exists.") from error
    return _tenant(row)


async def get(db: Connection, *, tenant_id: str) -> Tenant:
    row = await repository.get(db, tenant_id)
    if row is None:
        raise TenantNotFound(f"No tenant `{tenant_id}`.")
    return _tenant(row)


async def list_tenants(
    db: Connection, *, sort: str, cursor: str | None, limit: int
) -> Page[Tenant]:
    page = keyset(
        sort=sort,
        fields=SORT_FIELDS,
        cursor=cursor,
        limit=limit,
        first_parameter=1,
        parse_id=TEXT_FIELD,
    )
    rows = await repository.list_page(db, keyset=page)
    sort_column = SORT_FIELDS[sort.removeprefix("-")].column
    return page_of(
        [_tenant(row) for row in rows],
        limit=limit,
        sort=sort,
        sort_value=lambda tenant: getattr(tenant, sort_column),
        row_id=lambda tenant: tenant.id,
    )


async def update(
    db: Connection, *, tenant_id: str, body: TenantUpdate, expected_version: int | None
) -> Tenant:
    """Apply a partial update. Raises TenantNotFound (404) or VersionMismatch (412)."""
    changes = body.changes()
    settings = changes.get("settings")
    row = await repository.update(
        db,
        tenant_id=tenant_id,
        name=body.name,
        settings=settings.model_dump(exclude_unset=True)
        if isinstance(settings, TenantSettings)
        else None,
        status=body.status,
        expected_version=expected_version,
    )
    if row is None:
        await get(db, tenant_id=tenant_id)
        raise VersionMismatch("The tenant has changed since you read it.")
    return _tenant(row)


async def all_ids(db: Connection) -> list[str]:
    """Every tenant's id, for platform jobs that visit each tenant in turn."""
    return await repository.all_ids(db)
