"""SQL for the audit trail. Only INSERT and SELECT: the service role may do nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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


async def insert(db: Connection, *, tenant_id: str, entries: Sequence[NewEntry]) -> None:
    """Append `entries`, in order (each gets the clock's time as it is written). One entry
    (most requests) is one `execute`; `executemany` costs more for a single row."""
    if len(entries) == 1:
        (entry,) = entries
        await db.execute(
            INSERT,
            tenant_id,
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
        return
    await db.executemany(
        INSERT,
        [
            (
                tenant_id,
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
            for entry in entries
        ],
    )


async def list_page(
    db: Connection,
    *,
    tenant_id: str,
    keyset: Keyset,
    entity_type: str | None,
    entity_id: str | None,
    actor: str | None,
    after: datetime | None,
) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {COLUMNS} FROM audit_entry
        WHERE tenant_id = $1
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
