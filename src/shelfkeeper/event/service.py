"""Recording events: every state change calls `record` inside its own transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shelfkeeper.db.database import Connection
from shelfkeeper.event import repository
from shelfkeeper.event.schemas import EventType


def source_of(tenant_id: str) -> str:
    """The CloudEvents `source` of a tenant's events."""
    return f"/shelfkeeper/tenants/{tenant_id}"


async def record(
    db: Connection,
    *,
    tenant_id: str,
    type: EventType,
    subject: str,
    data: dict[str, Any],
) -> UUID:
    """Append an event to the outbox in the caller's transaction; it commits (or rolls back)
    with the change it describes. `data` must be JSON-serialisable."""
    return await repository.insert(
        db, tenant_id=tenant_id, type=type.value, subject=subject, data=data
    )
