"""SQL for publication cursors (`event_cursor`): how far a publisher has published a tenant's
events. Every statement runs in a transaction bound to the tenant."""

from __future__ import annotations

from shelfkeeper.db.database import Connection


class CursorMissing(Exception):
    """The tenant has no cursor row for this consumer yet: `create` it (and commit) first."""


async def lock(db: Connection, *, tenant_id: str, consumer: str) -> int | None:
    """The cursor's `sequence`, its row locked for this transaction; None when another
    transaction holds it: another publisher is publishing the tenant (`SKIP LOCKED`, so this
    one never waits for that publisher's network calls). Raises CursorMissing."""
    sequence: int | None = await db.fetchval(
        """
        SELECT sequence FROM event_cursor
        WHERE tenant_id = $1 AND consumer = $2
        FOR UPDATE SKIP LOCKED
        """,
        tenant_id,
        consumer,
    )
    if sequence is None and await get(db, tenant_id=tenant_id, consumer=consumer) is None:
        raise CursorMissing(consumer)
    return sequence


async def create(db: Connection, *, tenant_id: str, consumer: str) -> None:
    """Create the cursor at 0 unless it exists. Commit it on its own: a row created in a
    publishing transaction would make other publishers wait for that transaction."""
    await db.execute(
        """
        INSERT INTO event_cursor (tenant_id, consumer, sequence) VALUES ($1, $2, 0)
        ON CONFLICT (tenant_id, consumer) DO NOTHING
        """,
        tenant_id,
        consumer,
    )


async def advance(db: Connection, *, tenant_id: str, consumer: str, sequence: int) -> None:
    """Move the (locked) cursor forward to `sequence`; never backward."""
    await db.execute(
        """
        UPDATE event_cursor SET sequence = $3, updated_at = now()
        WHERE tenant_id = $1 AND consumer = $2 AND sequence < $3
        """,
        tenant_id,
        consumer,
        sequence,
    )


async def put(db: Connection, *, tenant_id: str, consumer: str, sequence: int) -> None:
    """Set the cursor to `sequence`, forward or back (waits for a publisher holding it)."""
    await db.execute(
        """
        INSERT INTO event_cursor (tenant_id, consumer, sequence) VALUES ($1, $2, $3)
        ON CONFLICT (tenant_id, consumer)
        DO UPDATE SET sequence = excluded.sequence, updated_at = now()
        """,
        tenant_id,
        consumer,
        sequence,
    )


async def get(db: Connection, *, tenant_id: str, consumer: str) -> int | None:
    sequence: int | None = await db.fetchval(
        "SELECT sequence FROM event_cursor WHERE tenant_id = $1 AND consumer = $2",
        tenant_id,
        consumer,
    )
    return sequence


async def unpublished_tenants(db: Connection, *, consumer: str) -> list[str]:
    """The tenants with sequenced events past `consumer`'s cursor (or with no cursor yet),
    across tenants: ids only (migration 0019's `SECURITY DEFINER` function; the caller's
    own view of `event` and `event_cursor` stays its tenant's)."""
    return [
        row[0] for row in await db.fetch("SELECT shelfkeeper_unpublished_tenants($1)", consumer)
    ]
