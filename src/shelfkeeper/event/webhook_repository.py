"""SQL for webhook endpoints, deliveries and attempts. Every statement filters by tenant, and
RLS stands behind it. Deliveries are created by the relay (`event.repository`), in the
statement that numbers their events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.kit.pagination import Keyset

ENDPOINT_COLUMNS = (
    "id, url, events, description, enabled, consecutive_failures, disabled_at, version, "
    "created_by, updated_by, created_at, updated_at"
)
QUALIFIED_ENDPOINT_COLUMNS = ", ".join(
    f"endpoint.{column}" for column in ENDPOINT_COLUMNS.split(", ")
)
ENDPOINT_UPDATABLE = frozenset({"url", "events", "description", "enabled"})
DELIVERY_COLUMNS = (
    "id, endpoint_id, event_id, event_sequence, subject, status, attempts, next_attempt_at, "
    "locked_until, last_status_code, last_error, delivered_at, created_at, updated_at"
)
EVENT_TYPE = (
    "(SELECT event.type FROM event WHERE event.tenant_id = webhook_delivery.tenant_id "
    "AND event.id = webhook_delivery.event_id) AS event_type"
)


async def insert_endpoint(
    db: Connection, *, tenant_id: str, values: dict[str, Any], secret: bytes, actor: str
) -> Record:
    row = await db.fetchrow(
        f"""
        INSERT INTO webhook_endpoint
            (tenant_id, url, events, description, enabled, secret, created_by, updated_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
        RETURNING {ENDPOINT_COLUMNS}
        """,
        tenant_id,
        values["url"],
        values["events"],
        values["description"],
        values["enabled"],
        secret,
        actor,
    )
    assert row is not None
    return row


async def get_endpoint(db: Connection, *, tenant_id: str, endpoint_id: UUID) -> Record | None:
    return await db.fetchrow(
        f"SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        endpoint_id,
    )


async def list_endpoints(
    db: Connection, *, tenant_id: str, keyset: Keyset, enabled: bool | None
) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoint
        WHERE tenant_id = $1 AND ($2::boolean IS NULL OR enabled = $2) AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        enabled,
        *keyset.arguments,
    )


async def update_endpoint(
    db: Connection,
    *,
    tenant_id: str,
    endpoint_id: UUID,
    changes: dict[str, Any],
    expected_version: int | None,
    actor: str,
) -> Record | None:
    """Apply `changes`; None when the endpoint is missing or not at `expected_version`.
    Enabling an endpoint starts its run of failures afresh."""
    assert set(changes) <= ENDPOINT_UPDATABLE
    assignments = [f"{column} = ${index}" for index, column in enumerate(changes, start=5)]
    reenable = ""
    if changes.get("enabled") is True:
        reenable = "consecutive_failures = 0, disabled_at = NULL, "
    return await db.fetchrow(
        f"""
        UPDATE webhook_endpoint SET
            {"".join(assignment + ", " for assignment in assignments)}
            {reenable}
            version = version + 1, updated_by = $4, updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND ($3::int IS NULL OR version = $3)
        RETURNING {ENDPOINT_COLUMNS}
        """,
        tenant_id,
        endpoint_id,
        expected_version,
        actor,
        *changes.values(),
    )


async def delete_endpoint(
    db: Connection, *, tenant_id: str, endpoint_id: UUID, expected_version: int | None
) -> bool:
    status = await db.execute(
        """
        DELETE FROM webhook_endpoint
        WHERE tenant_id = $1 AND id = $2 AND ($3::int IS NULL OR version = $3)
        """,
        tenant_id,
        endpoint_id,
        expected_version,
    )
    return status != "DELETE 0"


async def list_deliveries(
    db: Connection, *, tenant_id: str, endpoint_id: UUID, keyset: Keyset, status: str | None
) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {DELIVERY_COLUMNS}, {EVENT_TYPE} FROM webhook_delivery
        WHERE tenant_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR status = $3)
          AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        endpoint_id,
        status,
        *keyset.arguments,
    )


async def get_delivery(
    db: Connection, *, tenant_id: str, endpoint_id: UUID, delivery_id: UUID
) -> Record | None:
    return await db.fetchrow(
        f"""
        SELECT {DELIVERY_COLUMNS}, {EVENT_TYPE} FROM webhook_delivery
        WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3
        """,
        tenant_id,
        endpoint_id,
        delivery_id,
    )


async def attempts_of(
    db: Connection, *, tenant_id: str, delivery_ids: Sequence[UUID]
) -> list[Record]:
    return await db.fetch(
        """
        SELECT delivery_id, attempt, started_at, status_code, latency_seconds, error
        FROM webhook_attempt
        WHERE tenant_id = $1 AND delivery_id = ANY($2::uuid[])
        ORDER BY delivery_id, attempt
        """,
        tenant_id,
        list(delivery_ids),
    )


async def redeliver(
    db: Connection, *, tenant_id: str, endpoint_id: UUID, delivery_id: UUID
) -> Record | None:
    """Make the delivery due now with a fresh retry schedule; None when it is missing or an
    attempt holds its lease (in flight)."""
    return await db.fetchrow(
        f"""
        UPDATE webhook_delivery SET
            status = 'pending', scheduled_attempts = 0, next_attempt_at = clock_timestamp(),
            locked_until = NULL, lease = NULL, delivered_at = NULL, updated_at = now()
        WHERE tenant_id = $1 AND endpoint_id = $2 AND id = $3
          AND (locked_until IS NULL OR locked_until <= clock_timestamp())
        RETURNING {DELIVERY_COLUMNS}, {EVENT_TYPE}
        """,
        tenant_id,
        endpoint_id,
        delivery_id,
    )


# A delivery is due when it is pending, its time has come, no attempt holds its lease, its
# endpoint is enabled, and no earlier delivery of the same subject to the same endpoint is
# still pending (so a subject's events arrive in sequence order, and a failing one holds the
# later ones back). SKIP LOCKED: rows another dispatcher is claiming right now are left to it.
CLAIM_DUE = """
WITH due AS (
    SELECT delivery.id
    FROM webhook_delivery AS delivery
    JOIN webhook_endpoint AS endpoint
      ON endpoint.tenant_id = delivery.tenant_id AND endpoint.id = delivery.endpoint_id
    WHERE delivery.tenant_id = $1
      AND delivery.status = 'pending'
      AND delivery.next_attempt_at <= clock_timestamp()
      AND (delivery.locked_until IS NULL OR delivery.locked_until <= clock_timestamp())
      AND endpoint.enabled
      AND NOT EXISTS (
          SELECT FROM webhook_delivery AS earlier
          WHERE earlier.tenant_id = delivery.tenant_id
            AND earlier.endpoint_id = delivery.endpoint_id
            AND earlier.subject = delivery.subject
            AND earlier.status = 'pending'
            AND earlier.event_sequence < delivery.event_sequence
      )
    ORDER BY delivery.next_attempt_at, delivery.event_sequence
    LIMIT $2
    FOR UPDATE OF delivery SKIP LOCKED
),
claimed AS (
    UPDATE webhook_delivery AS delivery SET
        locked_until = clock_timestamp() + make_interval(secs => $3),
        lease = gen_random_uuid(),
        attempts = delivery.attempts + 1,
        scheduled_attempts = delivery.scheduled_attempts + 1
    FROM due
    WHERE delivery.tenant_id = $1 AND delivery.id = due.id
    RETURNING delivery.id, delivery.endpoint_id, delivery.event_id, delivery.lease,
              delivery.attempts, delivery.scheduled_attempts
)
SELECT claimed.id AS delivery_id, claimed.endpoint_id, claimed.lease, claimed.attempts,
       claimed.scheduled_attempts, endpoint.url, endpoint.secret,
       event.id, event.type, event.subject, event.data, event.time, event.sequence
FROM claimed
JOIN webhook_endpoint AS endpoint ON endpoint.tenant_id = $1 AND endpoint.id = claimed.endpoint_id
JOIN event ON event.tenant_id = $1 AND event.id = claimed.event_id
ORDER BY event.sequence
"""


async def claim_due(
    db: Connection, *, tenant_id: str, limit: int, lease_seconds: float
) -> list[Record]:
    """Lease up to `limit` due deliveries for `lease_seconds`, counting the attempt. Each
    row is the delivery (`delivery_id`, ...) with its endpoint and its event (`id`, `type`,
    `subject`, `data`, `time`, `sequence`, as `event.service.envelope` reads them)."""
    return await db.fetch(CLAIM_DUE, tenant_id, limit, lease_seconds)


async def has_pending(db: Connection, *, tenant_id: str) -> bool:
    """Whether the tenant has deliveries still to make (due or not, to enabled endpoints)."""
    pending: bool = await db.fetchval(
        """
        SELECT EXISTS (
            SELECT FROM webhook_delivery AS delivery
            JOIN webhook_endpoint AS endpoint
              ON endpoint.tenant_id = delivery.tenant_id AND endpoint.id = delivery.endpoint_id
            WHERE delivery.tenant_id = $1 AND delivery.status = 'pending' AND endpoint.enabled
        )
        """,
        tenant_id,
    )
    return pending


async def insert_attempt(
    db: Connection,
    *,
    tenant_id: str,
    delivery_id: UUID,
    attempt: int,
    started_at: datetime,
    status_code: int | None,
    latency_seconds: float,
    error: str | None,
) -> None:
    await db.execute(
        """
        INSERT INTO webhook_attempt
            (tenant_id, delivery_id, attempt, started_at, status_code, latency_seconds, error)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT DO NOTHING
        """,
        tenant_id,
        delivery_id,
        attempt,
        started_at,
        status_code,
        latency_seconds,
        error,
    )


async def finish_attempt(
    db: Connection,
    *,
    tenant_id: str,
    delivery_id: UUID,
    lease: UUID,
    status: str,
    retry_in_seconds: float | None,
    status_code: int | None,
    error: str | None,
) -> bool:
    """Record an attempt's outcome on its delivery, if the attempt still holds the lease
    (False: the lease expired and another attempt took the delivery over; it decides)."""
    updated = await db.execute(
        """
        UPDATE webhook_delivery SET
            status = $4,
            next_attempt_at = CASE WHEN $5::double precision IS NULL THEN next_attempt_at
                ELSE clock_timestamp() + make_interval(secs => $5::double precision) END,
            delivered_at = CASE WHEN $4 = 'succeeded' THEN clock_timestamp() END,
            locked_until = NULL, lease = NULL,
            last_status_code = $6, last_error = $7, updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND lease = $3
        """,
        tenant_id,
        delivery_id,
        lease,
        status,
        retry_in_seconds,
        status_code,
        error,
    )
    return updated != "UPDATE 0"


async def reset_failures(db: Connection, *, tenant_id: str, endpoint_id: UUID) -> None:
    await db.execute(
        """
        UPDATE webhook_endpoint SET consecutive_failures = 0
        WHERE tenant_id = $1 AND id = $2 AND consecutive_failures <> 0
        """,
        tenant_id,
        endpoint_id,
    )


async def count_failure(
    db: Connection, *, tenant_id: str, endpoint_id: UUID, disable_after: int
) -> Record | None:
    """Add a failed delivery to the endpoint's run and disable the endpoint when the run
    reaches `disable_after`. Returns the endpoint with `just_disabled` (this call disabled
    it), or None when the endpoint is gone."""
    return await db.fetchrow(
        f"""
        WITH old AS (
            SELECT id, enabled FROM webhook_endpoint
            WHERE tenant_id = $1 AND id = $2
            FOR UPDATE
        )
        UPDATE webhook_endpoint AS endpoint SET
            consecutive_failures = endpoint.consecutive_failures + 1,
            enabled = old.enabled AND endpoint.consecutive_failures + 1 < $3,
            disabled_at = CASE WHEN old.enabled AND endpoint.consecutive_failures + 1 >= $3
                THEN clock_timestamp() ELSE endpoint.disabled_at END,
            version = endpoint.version + CASE WHEN old.enabled
                AND endpoint.consecutive_failures + 1 >= $3 THEN 1 ELSE 0 END,
            updated_at = CASE WHEN old.enabled AND endpoint.consecutive_failures + 1 >= $3
                THEN now() ELSE endpoint.updated_at END
        FROM old
        WHERE endpoint.tenant_id = $1 AND endpoint.id = old.id
        RETURNING {QUALIFIED_ENDPOINT_COLUMNS},
            (old.enabled AND NOT endpoint.enabled) AS just_disabled
        """,
        tenant_id,
        endpoint_id,
        disable_after,
    )


async def due_delivery_tenants(db: Connection) -> list[str]:
    """The tenants with deliveries due now, across tenants: ids only (migration 0015's
    `SECURITY DEFINER` function)."""
    return [row[0] for row in await db.fetch("SELECT shelfkeeper_due_delivery_tenants()")]
