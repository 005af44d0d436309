"""SQL for the outbox."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shelfkeeper.db.database import Connection, Record

CHANNEL = "shelfkeeper_events"
"""The PostgreSQL notification channel writers signal on (payload: the tenant id)."""


async def insert(
    db: Connection, *, tenant_id: str, type: str, subject: str, data: dict[str, Any]
) -> UUID:
    """Insert an event (sequence NULL) and signal the relay; the notification is delivered
    only if the transaction commits."""
    event_id: UUID = await db.fetchval(
        f"""
        WITH inserted AS (
            INSERT INTO event (tenant_id, type, subject, data) VALUES ($1, $2, $3, $4)
            RETURNING id
        )
        SELECT inserted.id FROM inserted, (SELECT pg_notify('{CHANNEL}', $1)) AS notified
        """,
        tenant_id,
        type,
        subject,
        data,
    )
    return event_id


async def try_relay_lock(db: Connection, *, tenant_id: str) -> bool:
    """Take the tenant's relay lock for this transaction; False when another relay holds it."""
    locked: bool = await db.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('shelfkeeper.event-relay:' || $1, 0))",
        tenant_id,
    )
    return locked


# Run after `try_relay_lock`, as its own statement: in READ COMMITTED its snapshot is taken
# once the lock is held, so it sees every sequence the previous relay committed and only
# events whose transactions have committed. The same statement fans the numbered events out
# to the tenant's enabled webhook endpoints subscribed to their type: one delivery each,
# committed with the numbers, so no numbered event can miss its deliveries.
ASSIGN_SEQUENCES = """
WITH numbered AS (
    UPDATE event
    SET sequence = base.max_sequence + batch.position
    FROM (
        SELECT id, row_number() OVER (ORDER BY time, written) AS position
        FROM event
        WHERE tenant_id = $1 AND sequence IS NULL
        ORDER BY time, written
        LIMIT $2
    ) AS batch,
    (SELECT coalesce(max(sequence), 0) AS max_sequence FROM event WHERE tenant_id = $1) AS base
    WHERE event.tenant_id = $1 AND event.id = batch.id
    RETURNING event.id, event.type, event.subject, event.sequence
),
fanned_out AS (
    INSERT INTO webhook_delivery (tenant_id, endpoint_id, event_id, event_sequence, subject)
    SELECT $1, endpoint.id, numbered.id, numbered.sequence, numbered.subject
    FROM numbered
    JOIN webhook_endpoint AS endpoint
      ON endpoint.tenant_id = $1 AND endpoint.enabled AND numbered.type = ANY(endpoint.events)
)
SELECT count(*) FROM numbered
"""


async def assign_sequences(db: Connection, *, tenant_id: str, limit: int) -> int:
    numbered: int = await db.fetchval(ASSIGN_SEQUENCES, tenant_id, limit)
    return numbered


async def list_sequenced(db: Connection, *, tenant_id: str, after: int, limit: int) -> list[Record]:
    return await db.fetch(
        """
        SELECT id, type, subject, data, time, sequence FROM event
        WHERE tenant_id = $1 AND sequence > $2
        ORDER BY sequence
        LIMIT $3
        """,
        tenant_id,
        after,
        limit,
    )


async def backlog(db: Connection, *, tenant_id: str) -> Record:
    """The tenant's unsequenced events: `count`, and `oldest_age_seconds` (NULL if none),
    by the database's clock (served by the partial index on unsequenced events)."""
    row = await db.fetchrow(
        """
        SELECT count(*) AS count,
               extract(epoch FROM clock_timestamp() - min(time))::float8 AS oldest_age_seconds
        FROM event WHERE tenant_id = $1 AND sequence IS NULL
        """,
        tenant_id,
    )
    assert row is not None
    return row


async def unsequenced_tenants(db: Connection) -> list[str]:
    """The tenants with events not yet numbered, across tenants: ids only (migration 0015's
    `SECURITY DEFINER` function; the caller's own view of `event` stays its tenant's)."""
    return [row[0] for row in await db.fetch("SELECT shelfkeeper_unsequenced_tenants()")]
