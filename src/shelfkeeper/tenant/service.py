"""Tenant lifecycle rules, and entering a tenant for a tenant-scoped request.

Offboarding (`delete`, `export`) is cross-domain by nature, and lives here, in one place:
the export reads every tenant-owned table (found in the catalogue, not listed), and the
deletion relies on every tenant table's foreign key to `tenant` cascading.

Creating, updating and deleting a tenant describe their changes (`kit.recording`) for the
platform audit trail, written in the same transaction by whoever owns it (the request's
route, or `audit.service.platform_transaction` on the command line).
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from datetime import date, datetime, time
from typing import Any, cast

from pydantic import ValidationError

from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database, Record, bind_tenant
from shelfkeeper.kit import idempotency, recording
from shelfkeeper.kit.pagination import TEXT_FIELD, TIMESTAMP_FIELD, Page, SortField, keyset, page_of
from shelfkeeper.kit.problems import Conflict, Forbidden, NotFound, VersionMismatch
from shelfkeeper.privacy import service as privacy_service
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


ENTITY = "tenant"


def _described(tenant: Tenant) -> dict[str, Any]:
    """The tenant's state as its audit entries show it: name, status and each setting
    (`settings.<name>`, unset ones null), so that an update keeps just what it changed."""
    settings = {f"settings.{key}": value for key, value in tenant.settings.model_dump().items()}
    return {"name": tenant.name, "status": tenant.status, **settings}


def _update_action(before: Tenant, after: Tenant) -> str:
    if before.status != after.status:
        return "suspend" if after.status == "suspended" else "reactivate"
    return "update"


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
    tenant = _tenant(row)
    recording.record_change(ENTITY, tenant.id, "create", after=_described(tenant))
    return tenant


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
    """Apply a partial update, described as `suspend`, `reactivate` (the status changed) or
    `update`. Raises TenantNotFound (404) or VersionMismatch (412)."""
    current = await repository.get(db, tenant_id, for_update=True)
    if current is None:
        raise TenantNotFound(f"No tenant `{tenant_id}`.")
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
        raise VersionMismatch("The tenant has changed since you read it.")
    before, tenant = _tenant(current), _tenant(row)
    recording.record_change(
        ENTITY,
        tenant_id,
        _update_action(before, tenant),
        before=_described(before),
        after=_described(tenant),
    )
    return tenant


async def all_ids(db: Connection) -> list[str]:
    """Every tenant's id, for platform jobs that visit each tenant in turn."""
    return await repository.all_ids(db)


# --- offboarding -------------------------------------------------------------------------


async def delete(db: Connection, *, tenant_id: str) -> None:
    """Offboard a tenant: destroy its data keys (so whatever they sealed, in any backup
    taken from now on, cannot be opened), delete its stored idempotent responses (kept
    under the tenant's id without a foreign key, since the platform scope has some too)
    and the rows that a `RESTRICT` foreign key would hold the cascade up with, then the
    tenant, whose deletion cascades to every row of every tenant-owned table. Described
    (for the platform trail) with what went: the rows of each table, and how many data
    keys were destroyed. Raises TenantNotFound (404)."""
    current = await repository.get(db, tenant_id, for_update=True)
    if current is None:
        raise TenantNotFound(f"No tenant `{tenant_id}`.")
    await bind_tenant(db, tenant_id)
    counts = await repository.count_tenant_rows(
        db, tables=await repository.tenant_tables(db), tenant_id=tenant_id
    )
    keys_destroyed = await privacy_service.destroy_keys(db, tenant_id=tenant_id)
    await idempotency.forget(db, scope=tenant_id)
    for table in await repository.restricting_tables(db):
        await repository.delete_tenant_rows(db, table=table, tenant_id=tenant_id)
    await bind_tenant(db, PLATFORM_SCOPE)
    if not await repository.delete(db, tenant_id):
        raise TenantNotFound(f"No tenant `{tenant_id}`.")
    recording.record_change(
        ENTITY,
        tenant_id,
        "delete",
        before=_described(_tenant(current)),
        after={
            "rows_deleted": sum(counts.values()),
            "rows_deleted_per_table": [
                {"table": table, "rows": rows} for table, rows in counts.items() if rows
            ],
            "data_keys_destroyed": keys_destroyed,
        },
    )


EXPORT_SKIPPED_TABLES = frozenset({"tenant_data_key", "idempotency_key"})
"""Not exported: key material, and the replay cache of responses (copies of data that is
exported from its own table)."""


def _is_credential(column: str) -> bool:
    """Signing secrets (callback and webhook secrets: `secret`, `..._secret`) are exported
    as null: the export is data, not a way to impersonate the tenant's integrations."""
    return column == "secret" or column.endswith("_secret")


EXPORT_CHUNK_BYTES = 64 * 1024


def _json_default(value: object) -> Any:
    """Timestamps as ISO 8601; UUIDs, decimals (exact) and anything else as text."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, separators=(",", ":")).encode()


async def _exported_row(db: Connection, tenant_id: str, table: str, row: Record) -> dict[str, Any]:
    """The row as JSON-ready values, sealed values opened (other bytes as base64)."""
    values: dict[str, Any] = {}
    for column, value in row.items():
        if _is_credential(column):
            values[column] = None
        elif isinstance(value, bytes):
            values[column] = base64.b64encode(value).decode()
            if privacy_service.is_sealed(value):
                try:
                    values[column] = await privacy_service.open_json(
                        db, tenant_id=tenant_id, field=f"{table}.{column}", sealed=value
                    )
                except (privacy_service.DataKeyUnavailable, ValueError):
                    logger.warning("tenant export: %s.%s did not open", table, column)
        else:
            values[column] = value
    return values


async def export(database: Database, *, tenant_id: str, ndjson: bool) -> AsyncIterator[bytes]:
    """Everything the tenant owns, streamed: the tenant, then each tenant-owned table's rows
    (personal data opened), from one consistent snapshot.

    NDJSON: one `{"table", "row"}` object per line, the tenant first (`"table": "tenant"`).
    JSON: `{"tenant": {...}, "tables": {"<table>": [rows...], ...}}`. The tenant's data
    keys and stored idempotent responses are left out, signing secrets are null. Holds one
    pooled connection, in a read-only repeatable-read transaction bound to the tenant,
    while the client reads.
    """
    buffered: list[bytes] = []
    size = 0

    def push(piece: bytes) -> bytes | None:
        nonlocal size
        buffered.append(piece)
        size += len(piece)
        if size < EXPORT_CHUNK_BYTES:
            return None
        chunk = b"".join(buffered)
        buffered.clear()
        size = 0
        return chunk

    async with database.pool.acquire() as acquired:
        db = cast(Connection, acquired)
        async with db.transaction(isolation="repeatable_read", readonly=True):
            await bind_tenant(db, tenant_id)
            tenant = await repository.get(db, tenant_id)
            if tenant is None:  # offboarded since the request was authorized
                if not ndjson:
                    yield b'{"tenant":null,"tables":{}}\n'
                return
            tenant_row = dict(tenant.items())
            opening = (
                _dumps({"table": "tenant", "row": tenant_row}) + b"\n"
                if ndjson
                else b'{"tenant":' + _dumps(tenant_row) + b',"tables":{'
            )
            if (chunk := push(opening)) is not None:
                yield chunk
            tables = [
                table
                for table in await repository.tenant_tables(db)
                if table not in EXPORT_SKIPPED_TABLES
            ]
            for index, table in enumerate(tables):
                if not ndjson:
                    head = (b"," if index else b"") + _dumps(table) + b":["
                    if (chunk := push(head)) is not None:
                        yield chunk
                first = True
                async for row in repository.tenant_rows(db, table=table, tenant_id=tenant_id):
                    values = await _exported_row(db, tenant_id, table, row)
                    if ndjson:
                        piece = _dumps({"table": table, "row": values}) + b"\n"
                    else:
                        piece = (b"" if first else b",") + _dumps(values)
                    first = False
                    if (chunk := push(piece)) is not None:
                        yield chunk
                if not ndjson and (chunk := push(b"]")) is not None:
                    yield chunk
            if not ndjson:
                push(b"}}\n")
    if buffered:
        yield b"".join(buffered)
