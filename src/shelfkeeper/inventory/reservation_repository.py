"""SQL for reservations (holds). Every statement filters by tenant; RLS stands behind each one.

The stock a hold takes is changed through `repository.apply` like any other stock change;
these statements keep the holds themselves. Time comes in as a parameter (`$now`, NULL
meaning the database's `now()`), so that tests can place "now" where they need it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.kit.pagination import Keyset

LINES_JSON = """
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'line_no', l.line_no, 'variant_id', l.variant_id, 'sku', v.sku,
        'location_id', l.location_id, 'quantity', l.quantity) ORDER BY l.line_no), '[]'::jsonb)
     FROM reservation_line l
     JOIN variant v ON v.tenant_id = l.tenant_id AND v.id = l.variant_id
     WHERE l.tenant_id = r.tenant_id AND l.reservation_id = r.id) AS lines
"""


def _columns(now_parameter: str) -> str:
    """The reservation as shown: a hold past its expiry shows as `expired` at once, swept
    or not (`stored_status` keeps what the row says)."""
    return f"""
        r.id, r.status AS stored_status,
        CASE WHEN r.status = 'held' AND r.expires_at <= coalesce({now_parameter}, now())
             THEN 'expired' ELSE r.status END AS status,
        r.expires_at, r.reference, r.version, r.created_by, r.created_at, r.updated_at,
        {LINES_JSON}
    """


async def insert(
    db: Connection, *, tenant_id: str, ttl_seconds: int, now: datetime | None, actor: str
) -> UUID:
    reservation_id: UUID = await db.fetchval(
        """
        INSERT INTO reservation (tenant_id, status, expires_at, created_by)
        VALUES ($1, 'held', coalesce($2::timestamptz, now()) + make_interval(secs => $3), $4)
        RETURNING id
        """,
        tenant_id,
        now,
        float(ttl_seconds),
        actor,
    )
    return reservation_id


async def insert_lines(
    db: Connection,
    *,
    tenant_id: str,
    reservation_id: UUID,
    lines: Sequence[tuple[UUID, UUID, int]],
) -> None:
    """Store `(variant_id, location_id, quantity)` lines, numbered from 1 in the given order.

    Run after the levels were changed: the foreign key to `stock_level` then needs no lock
    the transaction does not already hold.
    """
    await db.execute(
        """
        INSERT INTO reservation_line
            (tenant_id, reservation_id, line_no, variant_id, location_id, quantity)
        SELECT $1, $2, line.line_no, line.variant_id, line.location_id, line.quantity
        FROM unnest($3::uuid[], $4::uuid[], $5::bigint[])
             WITH ORDINALITY AS line(variant_id, location_id, quantity, line_no)
        """,
        tenant_id,
        reservation_id,
        [variant_id for variant_id, _, _ in lines],
        [location_id for _, location_id, _ in lines],
        [quantity for _, _, quantity in lines],
    )


async def get(
    db: Connection, *, tenant_id: str, reservation_id: UUID, now: datetime | None
) -> Record | None:
    return await db.fetchrow(
        f"SELECT {_columns('$3::timestamptz')} FROM reservation r "
        "WHERE r.tenant_id = $1 AND r.id = $2",
        tenant_id,
        reservation_id,
        now,
    )


async def list_page(
    db: Connection,
    *,
    tenant_id: str,
    keyset: Keyset,
    status: str | None,
    now: datetime | None,
) -> list[Record]:
    """A page of holds; `status` filters on the status as shown (a due hold is `expired`)."""
    return await db.fetch(
        f"""
        SELECT {_columns("$2::timestamptz")} FROM reservation r
        WHERE r.tenant_id = $1
          AND ($3::text IS NULL
               OR (CASE WHEN r.status = 'held' AND r.expires_at <= coalesce($2, now())
                        THEN 'expired' ELSE r.status END) = $3)
          AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        now,
        status,
        *keyset.arguments,
    )


async def lock(
    db: Connection, *, tenant_id: str, reservation_id: UUID, now: datetime | None
) -> Record | None:
    """The hold's status (as shown) and version, locked until the transaction ends."""
    return await db.fetchrow(
        """
        SELECT r.status AS stored_status, r.version,
               CASE WHEN r.status = 'held' AND r.expires_at <= coalesce($3::timestamptz, now())
                    THEN 'expired' ELSE r.status END AS status
        FROM reservation r
        WHERE r.tenant_id = $1 AND r.id = $2
        FOR UPDATE
        """,
        tenant_id,
        reservation_id,
        now,
    )


async def set_status(
    db: Connection,
    *,
    tenant_id: str,
    reservation_id: UUID,
    status: str,
    reference: str | None = None,
) -> None:
    await db.execute(
        """
        UPDATE reservation
        SET status = $3, reference = coalesce($4, reference), version = version + 1,
            updated_at = now()
        WHERE tenant_id = $1 AND id = $2
        """,
        tenant_id,
        reservation_id,
        status,
        reference,
    )


async def extend(
    db: Connection,
    *,
    tenant_id: str,
    reservation_id: UUID,
    ttl_seconds: int,
    now: datetime | None,
) -> None:
    await db.execute(
        """
        UPDATE reservation
        SET expires_at = coalesce($3::timestamptz, now()) + make_interval(secs => $4),
            version = version + 1, updated_at = now()
        WHERE tenant_id = $1 AND id = $2
        """,
        tenant_id,
        reservation_id,
        now,
        float(ttl_seconds),
    )


async def units_by_level(db: Connection, *, tenant_id: str, reservation_id: UUID) -> list[Record]:
    """The hold's units per level (`variant_id`, `location_id`, `quantity`), in lock order."""
    return await db.fetch(
        """
        SELECT variant_id, location_id, sum(quantity)::bigint AS quantity
        FROM reservation_line
        WHERE tenant_id = $1 AND reservation_id = $2
        GROUP BY variant_id, location_id
        ORDER BY variant_id, location_id
        """,
        tenant_id,
        reservation_id,
    )


async def expire_due(
    db: Connection,
    *,
    tenant_id: str,
    levels: Sequence[tuple[UUID, UUID]] | None,
    now: datetime | None,
    limit: int,
) -> list[Record]:
    """Mark due holds `expired`; return their units per level, still to be released.

    A hold is due when it is `held` and `expires_at <= now`. With `levels`, only holds with
    a line on one of those levels. Holds locked by another transaction are skipped (it is
    releasing, extending, converting or expiring them), so this never waits for a hold.
    Rows come back as (`reservation_id`, `variant_id`, `location_id`, `quantity`) in the
    global lock order; a hold without lines (its levels were deleted) comes back once, with
    NULL level and quantity.
    """
    return await db.fetch(
        """
        WITH due AS (
            SELECT r.id FROM reservation r
            WHERE r.tenant_id = $1 AND r.status = 'held'
              AND r.expires_at <= coalesce($2::timestamptz, now())
              AND ($3::uuid[] IS NULL OR EXISTS (
                    SELECT 1
                    FROM reservation_line l
                    JOIN unnest($3::uuid[], $4::uuid[]) AS needed(variant_id, location_id)
                      ON needed.variant_id = l.variant_id AND needed.location_id = l.location_id
                    WHERE l.tenant_id = r.tenant_id AND l.reservation_id = r.id))
            ORDER BY r.expires_at, r.id
            LIMIT $5
            FOR UPDATE SKIP LOCKED
        ), expired AS (
            UPDATE reservation r
            SET status = 'expired', version = r.version + 1, updated_at = now()
            FROM due
            WHERE r.tenant_id = $1 AND r.id = due.id
            RETURNING r.id
        )
        SELECT expired.id AS reservation_id, l.variant_id, l.location_id,
               sum(l.quantity)::bigint AS quantity
        FROM expired
        LEFT JOIN reservation_line l ON l.tenant_id = $1 AND l.reservation_id = expired.id
        GROUP BY expired.id, l.variant_id, l.location_id
        ORDER BY l.variant_id, l.location_id, expired.id
        """,
        tenant_id,
        now,
        None if levels is None else [variant_id for variant_id, _ in levels],
        None if levels is None else [location_id for _, location_id in levels],
        limit,
    )
