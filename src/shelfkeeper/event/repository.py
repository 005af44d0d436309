"""SQL for the outbox."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shelfkeeper.db.database import Connection


async def insert(
    db: Connection, *, tenant_id: str, type: str, subject: str, data: dict[str, Any]
) -> UUID:
    event_id: UUID = await db.fetchval(
        "INSERT INTO event (tenant_id, type, subject, data) VALUES ($1, $2, $3, $4) RETURNING id",
        tenant_id,
        type,
        subject,
        data,
    )
    return event_id
