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
ORDER_COLUMNS = f"""
    o.id, o.number, o.status, o.payment_status, o.currency, o.total, o.amount_paid,
    o.customer, o.shipping_address, o.notes, o.metadata, o.shipment, o.reservation_id,
    o.version, o.created_by, o.updated_by, o.created_at, o.updated_at,
    {LINES_JSON}, {HISTORY_JSON}, {PAYMENTS_JSON}
"""
UPDATABLE = frozenset(
    {
        "status",
        "payment_status",
        "total",
        "amount_paid",
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
    customer: dict[str, Any]
    customer_email_index: str
    shipping_address: dict[str, Any] | None
    notes: str | None
    metadata: dict[str, str]
    reservation_id: UUID | None


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


async def insert_order(db: Connection, *, tenant_id: str, order: NewOrder, actor: str) -> UUID:
    """Insert a `pending` order without its number (see `assign_number`)."""
    order_id: UUID = await db.fetchval(
        """
        INSERT INTO sales_order
            (tenant_id, status, payment_status, currency, total, customer, customer_email_index,
             shipping_address, notes, metadata, reservation_id, created_by, updated_by)
        VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
        RETURNING id
        """,
        tenant_id,
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
    )
    return order_id


async def assign_number(db: Connection, *, tenant_id: str, order_id: UUID) -> int:
    """Give the order the tenant's next number, in one statement.

    The counter row stays locked until the transaction ends, so this must be the last
    statement (or nearly) of the transaction that creates the order: concurrent orders
    then wait for each other only for the moment before commit, never during their stock
    work. Numbers are gapless, since a transaction that rolls back takes its increment back.
    """
    number: int = await db.fetchval(
        """
        WITH counter AS (
            INSERT INTO order_counter AS c (tenant_id, last) VALUES ($1, 1)
            ON CONFLICT (tenant_id) DO UPDATE SET last = c.last + 1
            RETURNING c.last
        )
        UPDATE sales_order SET number = (SELECT last FROM counter)
        WHERE tenant_id = $1 AND id = $2
        RETURNING number
        """,
        tenant_id,
        order_id,
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
        [line.id for line in lines],
        [line.item_id for line in lines],
        [line.variant_id for line in lines],
        [line.sku for line in lines],
        [line.quantity for line in lines],
        [line.unit_price for line in lines],
        [line.location_id for line in lines],
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
        [allocation.line_id for allocation in allocations],
        [allocation.location_id for allocation in allocations],
        [allocation.position for allocation in allocations],
        [allocation.quantity for allocation in allocations],
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
        SELECT o.number, o.status, o.currency, o.total, o.amount_paid, o.version,
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
