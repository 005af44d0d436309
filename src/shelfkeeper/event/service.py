"""Recording events: every state change calls `record` inside its own transaction.

Reading them: `list_after` returns a tenant's sequenced events after a cursor.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.event import repository
from shelfkeeper.event.schemas import CloudEvent, EventType

CHANNEL = repository.CHANNEL
"""The notification channel writers signal on, with the tenant id as payload."""

OUTBOX_INSERT = "INSERT INTO event (tenant_id, type, subject, data)"
"""The head of an insert into the outbox, for a statement of another domain that records its
events in the same statement (a data-modifying CTE, no extra round trip). Follow it with a
query of `(tenant_id, type, subject, data)` rows; as with `record`, `id` and `time` take
their defaults (`time` is the clock when the row is written) and `sequence` stays NULL.
Such a statement also signals the relay: add `outbox_notify_cte(<tenant parameter>)` after
its CTEs and `OUTBOX_NOTIFIED` to the condition of its final query."""


def outbox_notify_cte(tenant_parameter: str) -> str:
    """A CTE (with its leading comma) that signals the relay for the tenant
    `tenant_parameter` (the statement's placeholder). PostgreSQL runs a CTE that is not
    data-modifying only when it is referenced: the final query must test `OUTBOX_NOTIFIED`,
    which is always true. The notification is sent only if the transaction commits; a
    spurious one (a statement that recorded nothing) costs the relay one empty pass."""
    return f", outbox_notified AS (SELECT pg_notify('{CHANNEL}', {tenant_parameter}))"


OUTBOX_NOTIFIED = "EXISTS (SELECT FROM outbox_notified)"
"""The condition that makes `outbox_notify_cte` run (always true)."""


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
    with the change it describes, and so does the notification that wakes the relay.
    `data` must be JSON-serialisable."""
    return await repository.insert(
        db, tenant_id=tenant_id, type=type.value, subject=subject, data=data
    )


def envelope(tenant_id: str, row: Record) -> CloudEvent:
    return CloudEvent(
        id=row["id"],
        source=source_of(tenant_id),
        type=EventType(row["type"]),
        time=row["time"],
        subject=row["subject"],
        data=row["data"],
        tenantid=tenant_id,
        sequence=row["sequence"],
    )


async def list_after(db: Connection, *, tenant_id: str, after: int, limit: int) -> list[CloudEvent]:
    """The tenant's relayed events with a sequence above `after`, in sequence order (at most
    `limit`). Events not yet relayed (no sequence) are not listed: once a consumer has seen
    sequence N, no event with a sequence at or below N can appear later (see
    docs/events.md)."""
    rows = await repository.list_sequenced(db, tenant_id=tenant_id, after=after, limit=limit)
    return [envelope(tenant_id, row) for row in rows]


async def backlog(db: Connection, *, tenant_id: str) -> tuple[int, float | None]:
    """How many of the tenant's events wait for the relay (no sequence yet), and how long
    the oldest has waited in seconds (None when none waits): for the outbox metrics. `db`
    must be bound to the tenant."""
    row = await repository.backlog(db, tenant_id=tenant_id)
    return row["count"], row["oldest_age_seconds"]
