"""SQL for the `tenant` table (platform-level: not under row-level security)."""

from __future__ import annotations

from typing import Any

import asyncpg

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.kit.pagination import Keyset

COLUMNS = "id, name, settings, status, version, created_at, updated_at"


class DuplicateTenant(Exception):
    pass


async def enter(db: Connection, tenant_id: str) -> Record | None:
    """Bind the transaction to `tenant_id`; return its `status` and `rate_limit` setting
    (None if the tenant does not exist).

    One statement: the binding and the lookup cost a single round trip.
    """
    row: Record | None = await db.fetchrow(
        """
        SELECT t.status, t.settings -> 'rate_limit' AS rate_limit
        FROM (SELECT set_config('app.tenant_id', $1, true)) AS bound
        LEFT JOIN tenant AS t ON t.id = $1
        """,
        tenant_id,
    )
    return row if row is not None and row["status"] is not None else None


async def insert(db: Connection, *, tenant_id: str, name: str, settings: dict[str, Any]) -> Record:
    try:
        row = await db.fetchrow(
            f"INSERT INTO tenant (id, name, settings) VALUES ($1, $2, $3) RETURNING {COLUMNS}",
            tenant_id,
            name,
            settings,
        )
    except asyncpg.UniqueViolationError as error:
        raise DuplicateTenant(tenant_id) from error
    assert row is not None
    return row


async def get(db: Connection, tenant_id: str) -> Record | None:
    return await db.fetchrow(f"SELECT {COLUMNS} FROM tenant WHERE id = $1", tenant_id)


async def list_page(db: Connection, *, keyset: Keyset) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {COLUMNS} FROM tenant
        WHERE {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        *keyset.arguments,
    )


async def update(
    db: Connection,
    *,
    tenant_id: str,
    name: str | None,
    settings: dict[str, Any] | None,
    status: str | None,
    expected_version: int | None,
) -> Record | None:
    """Apply the given changes; None when the tenant is missing or not at `expected_version`."""
    return await db.fetchrow(
        f"""
        UPDATE tenant SET
            name = coalesce($2, name),
            settings = settings || coalesce($3::jsonb, '{{}}'::jsonb),
            status = coalesce($4, status),
            version = version + 1,
            updated_at = now()
        WHERE id = $1 AND ($5::int IS NULL OR version = $5)
        RETURNING {COLUMNS}
        """,
        tenant_id,
        name,
        settings,
        status,
        expected_version,
    )


async def all_ids(db: Connection) -> list[str]:
    return [row["id"] for row in await db.fetch("SELECT id FROM tenant ORDER BY id")]
