"""SQL for the audit trails (`audit_entry`, `platform_audit_entry`). Only INSERT and SELECT:
the service role may do nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.kit.pagination import Keyset

COLUMNS = (
    "id, occurred_at, actor, role, action, entity_type, entity_id, before, after, "
    "request_id, client_address"
)


@dataclass(frozen=True)
class NewEntry:
    actor: str
    role: str | None
    action: str
    entity_type: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    client_address: str | None


INSERT = """
INSERT INTO audit_entry
    (tenant_id, actor, role, action, entity_type, entity_id, before, after,
     request_id, client_address)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


def _row(owner: str | None, entry: NewEntry) -> tuple[Any, ...]:
    """The parameters of `INSERT`/`PLATFORM_INSERT` for `entry`: `owner` is the tenant
    (the entry's own, or the one a platform entry concerned), then the entry's fields."""
    return (
        owner,
        entry.actor,
        entry.role,
        entry.action,
        entry.entity_type,
        entry.entity_id,
        entry.before,
        entry.after,
        entry.request_id,
        entry.client_address,
    )


async def insert(db: Connection, *, tenant_id: str, entries: Sequence[NewEntry]) -> None:
    """Append `entries`, in order (each gets the clock's time as it is written). One entry
    (most requests) is one `execute`; `executemany` costs more for a single row."""
    if len(entries) == 1:
        await db.execute(INSERT, *_row(tenant_id, entries[0]))
        return
    await db.executemany(INSERT, [_row(tenant_id, entry) for entry in entries])


PLATFORM_INSERT = """
INSERT INTO platform_audit_entry
    (target_tenant_id, actor, role, action, entity_type, entity_id, before, after,
     request_id, client_address)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""


async def insert_platform(
    db: Connection, *, entries: Sequence[tuple[str | None, NewEntry]]
) -> None:
    """Append platform entries, each with the tenant it concerned, in order; `db` must be
    bound to the platform scope (row-level security refuses the rows otherwise)."""
    await db.executemany(
        PLATFORM_INSERT, [_row(target_tenant_id, entry) for target_tenant_id, entry in entries]
    )


async def current_binding(db: Connection) -> str | None:
    """The tenant (or scope) the transaction is bound to, if any."""
    bound: str | None = await db.fetchval("SELECT current_setting('app.tenant_id', true)")
    return bound or None


TRAILS = {
    "tenant": ("audit_entry", "tenant_id", COLUMNS),
    "platform": ("platform_audit_entry", "target_tenant_id", f"{COLUMNS}, target_tenant_id"),
}
"""Each trail's table, the column naming the tenant of an entry, and the columns read."""


async def list_page(
    db: Connection,
    *,
    tenant_id: str,
    keyset: Keyset,
    entity_type: str | None,
    entity_id: str | None,
    actor: str | None,
    after: datetime | None,
    trail: Literal["tenant", "platform"] = "tenant",
) -> list[Record]:
    """A page of the entries about `tenant_id` of the tenant's own trail or of the
    platform's (in a transaction bound to the tenant, or to the platform scope)."""
    table, tenant_column, columns = TRAILS[trail]
    return await db.fetch(
        f"""
        SELECT {columns} FROM {table}
        WHERE {tenant_column} = $1
          AND ($2::text IS NULL OR entity_type = $2)
          AND ($3::text IS NULL OR entity_id = $3)
          AND ($4::text IS NULL OR actor = $4)
          AND ($5::timestamptz IS NULL OR occurred_at > $5)
          AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        entity_type,
        entity_id,
        actor,
        after,
        *keyset.arguments,
    )
