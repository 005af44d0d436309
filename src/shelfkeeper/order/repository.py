"""SQL for orders. Every statement filters by tenant; RLS stands behind each one.

The stock an order reserves, ships or releases is changed through the inventory service;
these statements keep the orders themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.event import service as event_service
from shelfkeeper.kit.pagination import Keyset

LINES_JSON = """
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'id', l.id, 'item_id', l.item_id, 'variant_id', l.variant_id, 'sku', l.sku,
        'quantity', l.quantity, 'unit_price', l.unit_price::text, 'location_id', l.location_id,
        'allocations', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                'location_id', a.location_id, 'quantity', a.quantity) ORDER BY a.position),
                '[]'::jsonb)
            FROM order_allocation a WHERE a.tenant_id = l.tenant_id AND a.line_id = l.id)
        ) ORDER BY l.position), '[]'::jsonb)
     FROM order_line l WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id) AS lines
"""
HISTORY_JSON = """
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'status', h.status, 'at', h.at, 'actor', h.actor) ORDER BY h.position), '[]'::jsonb)
     FROM order_status_change h
     WHERE h.tenant_id = o.tenant_id AND h.order_id = o.id) AS status_history
"""
PAYMENTS_JSON = """
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'id', p.id, 'amount', p.amount::text, 'provider', p.provider, 'reference', p.reference,
        'status', p.status, 'created_by', p.created_by, 'created_at', p.created_at)
        ORDER BY p.created_at, p.id), '[]'::jsonb)
     FROM payment p WHERE p.tenant_id = o.tenant_id AND p.order_id = o.id) AS payments
"""
REFUNDS_JSON = """
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'id', r.id, 'amount', r.amount::text, 'reason', r.reason, 'return_id', r.return_id,
        'provider', r.provider, 'reference', r.reference, 'created_by', r.created_by,
        'created_at', r.created_at)
        ORDER BY r.created_at, r.id), '[]'::jsonb)
     FROM refund r WHERE r.tenant_id = o.tenant_id AND r.order_id = o.id) AS refunds
"""
ORDER_COLUMNS = f"""
    o.id, o.number, o.status, o.payment_status, o.currency, o.total, o.amount_paid,
    o.amount_refunded, o.exchange_of,
    o.customer, o.shipping_address, o.notes, o.metadata, o.shipment, o.reservation_id,
    o.version, o.created_by, o.updated_by, o.created_at, o.updated_at,
    {LINES_JSON}, {HISTORY_JSON}, {PAYMENTS_JSON}, {REFUNDS_JSON}
"""
UPDATABLE = frozenset(
    {
        "status",
        "payment_status",
        "total",
        "amount_paid",
        "amount_refunded",
        "notes",
        "metadata",
        "shipping_address",
        "shipment",
    }
)


@dataclass(frozen=True)
class NewOrder:
    payment_status: str
    currency: str
    total: Decimal
    customer: bytes
    customer_email_index: str
    shipping_address: bytes | None
    notes: str | None
    metadata: dict[str, str]
    reservation_id: UUID | None
    exchange_of: UUID | None = None


@dataclass(frozen=True)
class NewLine:
    id: UUID
    item_id: UUID
    variant_id: UUID
    sku: str
    quantity: int
    unit_price: Decimal
    location_id: UUID | None


@dataclass(frozen=True)
class NewAllocation:
    line_id: UUID
    location_id: UUID
    position: int
    quantity: int


def _line_arrays(lines: Sequence[NewLine]) -> tuple[list[Any], ...]:
    """The lines as the parallel arrays `unnest` takes: id, item, variant, SKU, quantity,
    unit price, location."""
    return (
        [line.id for line in lines],
        [line.item_id for line in lines],
        [line.variant_id for line in lines],
        [line.sku for line in lines],
        [line.quantity for line in lines],
        [line.unit_price for line in lines],
        [line.location_id for line in lines],
    )


def _allocation_arrays(allocations: Sequence[NewAllocation]) -> tuple[list[Any], ...]:
    """The allocations as the parallel arrays `unnest` takes: line, location, position,
    quantity."""
    return (
        [allocation.line_id for allocation in allocations],
        [allocation.location_id for allocation in allocations],
        [allocation.position for allocation in allocations],
        [allocation.quantity for allocation in allocations],
    )


async def insert_order(
    db: Connection,
    *,
    tenant_id: str,
    order_id: UUID,
    order: NewOrder,
    lines: Sequence[NewLine],
    allocations: Sequence[NewAllocation],
    actor: str,
) -> datetime:
    """Insert a `pending` order without its number (see `assign_number`), with its lines
    (numbered in the given order), their allocations and its first status change, in one
    statement. Returns the time it was created (the transaction's `now()`, as every
    timestamp of the new rows)."""
    created_at: datetime = await db.fetchval(
        """
        WITH placed AS (
            INSERT INTO sales_order
                (tenant_id, id, status, payment_status, currency, total, customer,
                 customer_email_index, shipping_address, notes, metadata, reservation_id,
                 created_by, updated_by, exchange_of)
            VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)
            RETURNING created_at
        ), line AS (
            INSERT INTO order_line (tenant_id, id, order_id, position, item_id, variant_id,
                                    sku, quantity, unit_price, location_id)
            SELECT $1, line.id, $2, line.position, line.item_id, line.variant_id, line.sku,
                   line.quantity, line.unit_price, line.location_id
            FROM unnest($14::uuid[], $15::uuid[], $16::uuid[], $17::text[], $18::bigint[],
                        $19::numeric[], $20::uuid[])
                 WITH ORDINALITY AS line(id, item_id, variant_id, sku, quantity, unit_price,
                                         location_id, position)
        ), allocation AS (
            INSERT INTO order_allocation (tenant_id, line_id, location_id, position, quantity)
            SELECT $1, a.line_id, a.location_id, a.position, a.quantity
            FROM unnest($21::uuid[], $22::uuid[], $23::int[], $24::bigint[])
                 AS a(line_id, location_id, position, quantity)
        ), history AS (
            INSERT INTO order_status_change (tenant_id, order_id, position, status, actor)
            VALUES ($1, $2, 1, 'pending', $12)
        )
        SELECT created_at FROM placed
        """,
        tenant_id,
        order_id,
        order.payment_status,
        order.currency,
        order.total,
        order.customer,
        order.customer_email_index,
        order.shipping_address,
        order.notes,
        order.metadata,
        order.reservation_id,
        actor,
        order.exchange_of,
        *_line_arrays(lines),
        *_allocation_arrays(allocations),
    )
    return created_at


@dataclass(frozen=True)
class NumberedEvent:
    """The event that announces a new order, written with its number: `data` is the order
    whose `number` the statement that takes the number fills in."""

    type: str
    subject: str
    data: dict[str, Any]


# The tenant's orders take their numbers in their order of arrival: each first waits for a
# transaction-scoped advisory lock of the tenant's counter (`queued`), granted one at a time
# in the order asked, and only then increments the counter row, which is by then free. On
# the row lock alone the waiters would all wake at each commit and race for the row (the
# upsert waits for the holder's transaction itself, not in a queue): under contention some
# waited five times as long as the median (docs/benchmarks.md, "Order placement").
COUNTER_QUEUE = "hashtextextended('shelfkeeper.order-counter:' || $1, 0)"
ASSIGN_NUMBER = (
    f"""
WITH queued AS MATERIALIZED (
    SELECT pg_advisory_xact_lock({COUNTER_QUEUE})
), counter AS (
    INSERT INTO order_counter AS c (tenant_id, last)
    SELECT $1, 1 FROM queued
    ON CONFLICT (tenant_id) DO UPDATE SET last = c.last + 1
    RETURNING c.last
), numbered AS (
    UPDATE sales_order SET number = (SELECT last FROM counter)
    WHERE tenant_id = $1 AND id = $2
    RETURNING number
), recorded AS (
    """
    + event_service.OUTBOX_INSERT
    + """
    SELECT $1, $3, $4, jsonb_set($5::jsonb, '{number}', to_jsonb(numbered.number))
    FROM numbered
)
"""
    + event_service.outbox_notify_cte("$1")
    + f"""
SELECT number FROM numbered WHERE {event_service.OUTBOX_NOTIFIED}
"""
)


async def assign_number(
    db: Connection, *, tenant_id: str, order_id: UUID, event: NumberedEvent
) -> int:
    """Give the order the tenant's next number and record `event` with it, in one
    statement.

    The counter row stays locked until the transaction ends, so this must be the last
    statement of the transaction that creates the order: concurrent orders then wait for
    each other only from this statement to the commit, never during their stock work, and
    nothing the service sends after it prolongs the wait. Numbers are gapless, since a
    transaction that rolls back takes its increment back.
    """
    number: int = await db.fetchval(
        ASSIGN_NUMBER, tenant_id, order_id, event.type, event.subject, event.data
    )
    return number


async def insert_lines(
    db: Connection, *, tenant_id: str, order_id: UUID, lines: Sequence[NewLine]
) -> None:
    """Append lines to the order, numbered after its existing ones in the given order."""
    await db.execute(
        """
        INSERT INTO order_line (tenant_id, id, order_id, position, item_id, variant_id, sku,
                                quantity, unit_price, location_id)
        SELECT $1, line.id, $2,
               (SELECT coalesce(max(position), 0) FROM order_line
                WHERE tenant_id = $1 AND order_id = $2) + line.ordinality,
               line.item_id, line.variant_id, line.sku, line.quantity, line.unit_price,
               line.location_id
        FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::bigint[],
                    $8::numeric[], $9::uuid[])
             WITH ORDINALITY AS line(id, item_id, variant_id, sku, quantity, unit_price,
                                     location_id, ordinality)
        """,
        tenant_id,
        order_id,
        *_line_arrays(lines),
    )


async def insert_allocations(
    db: Connection, *, tenant_id: str, allocations: Sequence[NewAllocation]
) -> None:
    await db.execute(
        """
        INSERT INTO order_allocation (tenant_id, line_id, location_id, position, quantity)
        SELECT $1, a.line_id, a.location_id, a.position, a.quantity
        FROM unnest($2::uuid[], $3::uuid[], $4::int[], $5::bigint[])
             AS a(line_id, location_id, position, quantity)
        """,
        tenant_id,
        *_allocation_arrays(allocations),
    )


async def replace_allocations(
    db: Connection, *, tenant_id: str, line_id: UUID, allocations: Sequence[NewAllocation]
) -> None:
    await db.execute(
        "DELETE FROM order_allocation WHERE tenant_id = $1 AND line_id = $2", tenant_id, line_id
    )
    await insert_allocations(db, tenant_id=tenant_id, allocations=allocations)


async def add_status_change(
    db: Connection, *, tenant_id: str, order_id: UUID, status: str, actor: str
) -> None:
    await db.execute(
        """
        INSERT INTO order_status_change (tenant_id, order_id, position, status, actor)
        VALUES ($1, $2,
                (SELECT coalesce(max(position), 0) + 1 FROM order_status_change
                 WHERE tenant_id = $1 AND order_id = $2),
                $3, $4)
        """,
        tenant_id,
        order_id,
        status,
        actor,
    )


async def get(db: Connection, *, tenant_id: str, order_id: UUID) -> Record | None:
    return await db.fetchrow(
        f"SELECT {ORDER_COLUMNS} FROM sales_order o WHERE o.tenant_id = $1 AND o.id = $2",
        tenant_id,
        order_id,
    )


async def lock(db: Connection, *, tenant_id: str, order_id: UUID) -> Record | None:
    """The order's state, locked until the transaction ends (every change to an order, its
    lines or its payments takes this lock first, before any stock level)."""
    return await db.fetchrow(
        """
        SELECT o.number, o.status, o.currency, o.total, o.amount_paid, o.amount_refunded,
               o.version, o.created_at,
               (SELECT count(*) FROM order_line l
                WHERE l.tenant_id = o.tenant_id AND l.order_id = o.id) AS line_count
        FROM sales_order o
        WHERE o.tenant_id = $1 AND o.id = $2
        FOR NO KEY UPDATE
        """,
        tenant_id,
        order_id,
    )


async def update(
    db: Connection, *, tenant_id: str, order_id: UUID, changes: dict[str, Any], actor: str
) -> None:
    """Apply `changes` (columns of `UPDATABLE`) and count a new version."""
    assert set(changes) <= UPDATABLE
    assignments = "".join(f"{column} = ${index}, " for index, column in enumerate(changes, start=4))
    await db.execute(
        f"""
        UPDATE sales_order
        SET {assignments} version = version + 1, updated_by = $3, updated_at = now()
        WHERE tenant_id = $1 AND id = $2
        """,
        tenant_id,
        order_id,
        actor,
        *changes.values(),
    )


async def units(db: Connection, *, tenant_id: str, order_id: UUID) -> list[Record]:
    """The order's allocated units: (`variant_id`, `location_id`, `quantity`) per allocation."""
    return await db.fetch(
        """
        SELECT l.variant_id, a.location_id, a.quantity
        FROM order_line l
        JOIN order_allocation a ON a.tenant_id = l.tenant_id AND a.line_id = l.id
        WHERE l.tenant_id = $1 AND l.order_id = $2
        ORDER BY l.variant_id, a.location_id
        """,
        tenant_id,
        order_id,
    )


async def get_line(
    db: Connection, *, tenant_id: str, order_id: UUID, line_id: UUID
) -> Record | None:
    """A line with its allocations (`location_id`, `position`, `quantity`, by position)."""
    return await db.fetchrow(
        """
        SELECT l.id, l.variant_id, l.quantity, l.unit_price, l.location_id,
               (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'location_id', a.location_id, 'position', a.position,
                    'quantity', a.quantity) ORDER BY a.position), '[]'::jsonb)
                FROM order_allocation a
                WHERE a.tenant_id = l.tenant_id AND a.line_id = l.id) AS allocations
        FROM order_line l
        WHERE l.tenant_id = $1 AND l.order_id = $2 AND l.id = $3
        """,
        tenant_id,
        order_id,
        line_id,
    )


async def update_line(
    db: Connection, *, tenant_id: str, line_id: UUID, quantity: int, unit_price: Decimal
) -> None:
    await db.execute(
        "UPDATE order_line SET quantity = $3, unit_price = $4 WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        line_id,
        quantity,
        unit_price,
    )


async def delete_line(db: Connection, *, tenant_id: str, line_id: UUID) -> None:
    await db.execute("DELETE FROM order_line WHERE tenant_id = $1 AND id = $2", tenant_id, line_id)


async def insert_payment(
    db: Connection,
    *,
    tenant_id: str,
    order_id: UUID,
    amount: Decimal,
    provider: str,
    reference: str | None,
    status: str,
    actor: str,
) -> UUID:
    payment_id: UUID = await db.fetchval(
        """
        INSERT INTO payment (tenant_id, order_id, amount, provider, reference, status, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        RETURNING id
        """,
        tenant_id,
        order_id,
        amount,
        provider,
        reference,
        status,
        actor,
    )
    return payment_id


@dataclass(frozen=True)
class OrderFilter:
    status: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    customer_email_index: str | None = None


async def list_page(
    db: Connection, *, tenant_id: str, keyset: Keyset, filters: OrderFilter
) -> list[Record]:
    """A page of orders. Sort columns are the table's own (`created_at`, `updated_at`,
    `total`), unqualified in `keyset`; the query selects them under their own names."""
    return await db.fetch(
        f"""
        SELECT {ORDER_COLUMNS} FROM sales_order o
        WHERE o.tenant_id = $1
          AND ($2::text IS NULL OR o.status = $2)
          AND ($3::timestamptz IS NULL OR o.created_at >= $3)
          AND ($4::timestamptz IS NULL OR o.created_at < $4)
          AND ($5::text IS NULL OR o.customer_email_index = $5)
          AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        filters.status,
        filters.created_after,
        filters.created_before,
        filters.customer_email_index,
        *keyset.arguments,
    )


async def ids_by_email_index(db: Connection, *, tenant_id: str, email_index: str) -> list[UUID]:
    """Every order of the customer with that blind-index value, oldest first."""
    rows = await db.fetch(
        """
        SELECT id FROM sales_order
        WHERE tenant_id = $1 AND customer_email_index = $2
        ORDER BY created_at, id
        """,
        tenant_id,
        email_index,
    )
    return [row["id"] for row in rows]


async def erase_customer(
    db: Connection,
    *,
    tenant_id: str,
    order_ids: Sequence[UUID],
    customer: bytes,
    customer_email_index: str,
    actor: str,
) -> None:
    """Replace the orders' customer and email index, drop their shipping address (a new
    version each)."""
    await db.execute(
        """
        UPDATE sales_order
        SET customer = $3, customer_email_index = $4, shipping_address = NULL,
            version = version + 1, updated_by = $5, updated_at = now()
        WHERE tenant_id = $1 AND id = ANY($2::uuid[])
        """,
        tenant_id,
        list(order_ids),
        customer,
        customer_email_index,
        actor,
    )


# --- after the sale -------------------------------------------------------------------------

RETURN_COLUMNS = """
    r.id, r.order_id, r.status, r.exchange_order_id, r.version, r.created_by, r.updated_by,
    r.created_at, r.updated_at, o.currency,
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'line_id', rl.line_id, 'variant_id', l.variant_id, 'sku', l.sku,
        'quantity', rl.quantity, 'unit_price', l.unit_price::text, 'reason', rl.reason,
        'restock', rl.restock) ORDER BY rl.position), '[]'::jsonb)
     FROM order_return_line rl
     JOIN order_line l ON l.tenant_id = rl.tenant_id AND l.id = rl.line_id
     WHERE rl.tenant_id = r.tenant_id AND rl.return_id = r.id) AS lines
"""


@dataclass(frozen=True)
class NewReturnLine:
    line_id: UUID
    quantity: int
    reason: str | None
    restock: bool


async def order_lines(db: Connection, *, tenant_id: str, order_id: UUID) -> list[Record]:
    """The order's lines with their allocations (by position) and the units of each that
    are in returns not rejected (`returned`) and in received returns (`received`)."""
    return await db.fetch(
        """
        SELECT l.id, l.variant_id, l.sku, l.quantity, l.unit_price, l.location_id,
               (SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'location_id', a.location_id, 'quantity', a.quantity) ORDER BY a.position),
                    '[]'::jsonb)
                FROM order_allocation a
                WHERE a.tenant_id = l.tenant_id AND a.line_id = l.id) AS allocations,
               (SELECT coalesce(sum(rl.quantity), 0) FROM order_return_line rl
                JOIN order_return r ON r.tenant_id = rl.tenant_id AND r.id = rl.return_id
                WHERE rl.tenant_id = l.tenant_id AND rl.line_id = l.id
                  AND r.status <> 'rejected')::bigint AS returned,
               (SELECT coalesce(sum(rl.quantity), 0) FROM order_return_line rl
                JOIN order_return r ON r.tenant_id = rl.tenant_id AND r.id = rl.return_id
                WHERE rl.tenant_id = l.tenant_id AND rl.line_id = l.id
                  AND r.status = 'received')::bigint AS received
        FROM order_line l
        WHERE l.tenant_id = $1 AND l.order_id = $2
        ORDER BY l.position
        """,
        tenant_id,
        order_id,
    )


async def insert_return(
    db: Connection,
    *,
    tenant_id: str,
    order_id: UUID,
    lines: Sequence[NewReturnLine],
    actor: str,
) -> UUID:
    """Insert a `requested` return with its lines (in one statement)."""
    return_id: UUID = await db.fetchval(
        """
        WITH new_return AS (
            INSERT INTO order_return (tenant_id, order_id, status, created_by, updated_by)
            VALUES ($1, $2, 'requested', $3, $3)
            RETURNING id
        ), new_lines AS (
            INSERT INTO order_return_line
                (tenant_id, return_id, position, line_id, quantity, reason, restock)
            SELECT $1, new_return.id, line.ordinality, line.line_id, line.quantity,
                   line.reason, line.restock
            FROM new_return,
                 unnest($4::uuid[], $5::bigint[], $6::text[], $7::boolean[])
                 WITH ORDINALITY AS line(line_id, quantity, reason, restock, ordinality)
        )
        SELECT id FROM new_return
        """,
        tenant_id,
        order_id,
        actor,
        [line.line_id for line in lines],
        [line.quantity for line in lines],
        [line.reason for line in lines],
        [line.restock for line in lines],
    )
    return return_id


async def get_return(
    db: Connection, *, tenant_id: str, order_id: UUID, return_id: UUID
) -> Record | None:
    return await db.fetchrow(
        f"""
        SELECT {RETURN_COLUMNS}
        FROM order_return r
        JOIN sales_order o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
        WHERE r.tenant_id = $1 AND r.order_id = $2 AND r.id = $3
        """,
        tenant_id,
        order_id,
        return_id,
    )


async def list_returns(db: Connection, *, tenant_id: str, order_id: UUID) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {RETURN_COLUMNS}
        FROM order_return r
        JOIN sales_order o ON o.tenant_id = r.tenant_id AND o.id = r.order_id
        WHERE r.tenant_id = $1 AND r.order_id = $2
        ORDER BY r.created_at, r.id
        """,
        tenant_id,
        order_id,
    )


async def lock_return(
    db: Connection, *, tenant_id: str, order_id: UUID, return_id: UUID
) -> Record | None:
    """The return's status and version, locked (after its order's row)."""
    return await db.fetchrow(
        """
        SELECT status, version FROM order_return
        WHERE tenant_id = $1 AND order_id = $2 AND id = $3
        FOR NO KEY UPDATE
        """,
        tenant_id,
        order_id,
        return_id,
    )


async def update_return(
    db: Connection,
    *,
    tenant_id: str,
    return_id: UUID,
    actor: str,
    status: str | None = None,
    exchange_order_id: UUID | None = None,
) -> None:
    await db.execute(
        """
        UPDATE order_return
        SET status = coalesce($4, status),
            exchange_order_id = coalesce($5, exchange_order_id),
            version = version + 1, updated_by = $3, updated_at = now()
        WHERE tenant_id = $1 AND id = $2
        """,
        tenant_id,
        return_id,
        actor,
        status,
        exchange_order_id,
    )


async def insert_refund(
    db: Connection,
    *,
    tenant_id: str,
    order_id: UUID,
    amount: Decimal,
    reason: str | None,
    return_id: UUID | None,
    provider: str,
    reference: str | None,
    actor: str,
) -> UUID:
    refund_id: UUID = await db.fetchval(
        """
        INSERT INTO refund
            (tenant_id, order_id, amount, reason, return_id, provider, reference, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING id
        """,
        tenant_id,
        order_id,
        amount,
        reason,
        return_id,
        provider,
        reference,
        actor,
    )
    return refund_id


async def put_secret(
    db: Connection, *, tenant_id: str, provider: str, secret: bytes, actor: str
) -> Record:
    """Create or replace the tenant's callback secret for `provider`."""
    row = await db.fetchrow(
        """
        INSERT INTO integration_secret (tenant_id, provider, secret, created_by)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (tenant_id, provider)
        DO UPDATE SET secret = excluded.secret, created_by = excluded.created_by,
                      created_at = now()
        RETURNING provider, created_at
        """,
        tenant_id,
        provider,
        secret,
        actor,
    )
    assert row is not None
    return row


async def get_secret(db: Connection, *, tenant_id: str, provider: str) -> bytes | None:
    secret: bytes | None = await db.fetchval(
        "SELECT secret FROM integration_secret WHERE tenant_id = $1 AND provider = $2",
        tenant_id,
        provider,
    )
    return secret


async def claim_callback(db: Connection, *, tenant_id: str, provider: str, webhook_id: str) -> bool:
    """Record the callback's `webhook-id`; False when it was handled before (a replay). A
    concurrent duplicate waits for the first to commit or roll back."""
    claimed: str | None = await db.fetchval(
        """
        INSERT INTO callback_receipt (tenant_id, provider, webhook_id) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING
        RETURNING webhook_id
        """,
        tenant_id,
        provider,
        webhook_id,
    )
    return claimed is not None


async def unpaid_due(
    db: Connection, *, tenant_id: str, placed_before: datetime, limit: int
) -> list[UUID]:
    """Pending orders with nothing paid, placed before `placed_before` (oldest first)."""
    rows = await db.fetch(
        """
        SELECT id FROM sales_order
        WHERE tenant_id = $1 AND status = 'pending' AND amount_paid = 0 AND created_at < $2
        ORDER BY created_at, id
        LIMIT $3
        """,
        tenant_id,
        placed_before,
        limit,
    )
    return [row["id"] for row in rows]
