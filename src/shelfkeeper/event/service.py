"""Recording events: every state change calls `record` inside its own transaction."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shelfkeeper.db.database import Connection
from shelfkeeper.event import repository
from shelfkeeper.event.schemas import EventType

OUTBOX_INSERT = "INSERT INTO event (tenant_id, type, subject, data)"
"""The head of an insert into the outbox, for a statement of another domain that records its
events in the same statement (a data-modifying CTE, no extra round trip). Follow it with a
query of `(tenant_id, type, subject, data)` rows; as with `record`, `id` and `time` take
their defaults (`time` is the clock when the row is written) and `sequence` stays NULL."""


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
