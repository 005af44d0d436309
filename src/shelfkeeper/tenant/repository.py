"""SQL for the `tenant` table (platform-level: not under row-level security).

And, for offboarding, the one place that reads every tenant-owned table without knowing
them: the catalogue names the tables with a `tenant_id` column, and `tenant_rows` reads one
tenant's rows of each (under that tenant's binding, so row-level security still applies).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from shelfkeeper.db.database import Connection, Record, quote_identifier
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


async def get(db: Connection, tenant_id: str, *, for_update: bool = False) -> Record | None:
    """The tenant's row; `for_update` locks it until the transaction ends (so what is read
    stays what an update changes)."""
    lock = " FOR UPDATE" if for_update else ""
    return await db.fetchrow(f"SELECT {COLUMNS} FROM tenant WHERE id = $1{lock}", tenant_id)


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


async def delete(db: Connection, tenant_id: str) -> bool:
    """Delete the tenant; every tenant-owned row goes with it (each table's foreign key to
    `tenant` cascades). False when there was no such tenant."""
    deleted: str | None = await db.fetchval(
        "DELETE FROM tenant WHERE id = $1 RETURNING id", tenant_id
    )
    return deleted is not None


async def restricting_tables(db: Connection) -> list[str]:
    """Tables whose rows a foreign key declared `ON DELETE RESTRICT` protects their parent
    row with (`stock_level` keeps a location from being deleted while it has levels):
    the cascade from `tenant` cannot pass them, so offboarding deletes their rows first."""
    rows = await db.fetch(
        """
        SELECT DISTINCT c.relname FROM pg_constraint k
        JOIN pg_class c ON c.oid = k.conrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE k.contype = 'f' AND k.confdeltype = 'r' AND n.nspname = current_schema()
        ORDER BY c.relname
        """
    )
    return [row["relname"] for row in rows]


async def delete_tenant_rows(db: Connection, *, table: str, tenant_id: str) -> None:
    """Delete the tenant's rows of `table` (a catalogue name); `db` bound to the tenant."""
    await db.execute(f"DELETE FROM {quote_identifier(table)} WHERE tenant_id = $1", tenant_id)


async def tenant_tables(db: Connection) -> list[str]:
    """Every table with a `tenant_id` column that this role may read, by name."""
    rows = await db.fetch(
        """
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a
          ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
          AND NOT c.relispartition AND has_table_privilege(c.oid, 'SELECT')
        ORDER BY c.relname
        """
    )
    return [row["relname"] for row in rows]


async def count_tenant_rows(db: Connection, *, tables: list[str], tenant_id: str) -> dict[str, int]:
    """How many rows the tenant has in each of `tables` (catalogue names), in one statement;
    `db` bound to the tenant."""
    if not tables:
        return {}
    counts = ", ".join(
        f"(SELECT count(*) FROM {quote_identifier(table)} WHERE tenant_id = $1)" for table in tables
    )
    row = await db.fetchrow(f"SELECT ARRAY[{counts}]", tenant_id)
    assert row is not None
    return dict(zip(tables, row[0], strict=True))


async def tenant_rows(db: Connection, *, table: str, tenant_id: str) -> AsyncIterator[Record]:
    """The tenant's rows of `table` (a name from `tenant_tables`), read through a cursor:
    `db` must be in a transaction bound to the tenant."""
    query = f"SELECT * FROM {quote_identifier(table)} WHERE tenant_id = $1"
    async for row in db.cursor(query, tenant_id, prefetch=500):
        yield row
