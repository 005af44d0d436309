"""SQL for inventory. Every statement filters by tenant; RLS stands behind each one.

A stock change is one statement: a conditional UPDATE (or an upsert, where a missing level
may be created) whose WHERE clause *is* the business rule, with the ledger row inserted by
the same statement in a data-modifying CTE. Zero rows back means the rule refused the change;
only then does a second read explain why. The same statement keeps the level's low-stock
state and records its events in the outbox (`InventoryUpdated` per movement,
`InventoryLowStock` on a downward crossing of the threshold), so neither costs a round trip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any
from uuid import UUID

import asyncpg

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from shelfkeeper.kit import recording
from shelfkeeper.kit.pagination import Keyset
from shelfkeeper.observability import metrics
from shelfkeeper.tenant import service as tenant_service

ITEM_COLUMNS = (
    "id, sku, name, description, attributes, low_stock_threshold, allow_backorder, version, "
    "created_by, updated_by, created_at, updated_at"
)
VARIANTS_JSON = """
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'id', v.id, 'sku', v.sku, 'attributes', v.attributes, 'price', v.price::text,
        'version', v.version) ORDER BY v.position), '[]'::jsonb)
     FROM variant v WHERE v.tenant_id = item.tenant_id AND v.item_id = item.id) AS variants
"""
STOCK_JSON = """
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'variant_id', s.variant_id, 'location_id', s.location_id, 'on_hand', s.on_hand,
        'reserved', s.reserved, 'available', s.on_hand - s.reserved,
        'low_stock_threshold', s.low_stock_threshold, 'version', s.version)
        ORDER BY v.position, s.location_id), '[]'::jsonb)
     FROM stock_level s JOIN variant v ON v.tenant_id = s.tenant_id AND v.id = s.variant_id
     WHERE v.tenant_id = item.tenant_id AND v.item_id = item.id) AS stock
"""
MOVEMENT_COLUMNS = (
    "id, variant_id, location_id, operation, quantity, on_hand_after, reserved_after, reason, "
    "note, reference, actor, created_at"
)


class DuplicateSku(Exception):
    pass


class UnknownLocation(Exception):
    pass


class Oversold(Exception):
    """Levels of the item have more reserved than on hand (by `args[0]` units in all)."""


# --- items and variants ---------------------------------------------------------------


async def register_sku(
    db: Connection, *, tenant_id: str, sku: str, item_id: UUID, variant_id: UUID | None
) -> None:
    try:
        await db.execute(
            "INSERT INTO sku (tenant_id, sku, item_id, variant_id) VALUES ($1, $2, $3, $4)",
            tenant_id,
            sku,
            item_id,
            variant_id,
        )
    except asyncpg.UniqueViolationError as error:
        raise DuplicateSku(sku) from error


async def unregister_sku(db: Connection, *, tenant_id: str, sku: str) -> None:
    await db.execute("DELETE FROM sku WHERE tenant_id = $1 AND sku = $2", tenant_id, sku)


async def insert_item(
    db: Connection, *, tenant_id: str, values: dict[str, Any], actor: str
) -> UUID:
    item_id: UUID = await db.fetchval(
        """
        INSERT INTO item (tenant_id, sku, name, description, attributes, low_stock_threshold,
                          allow_backorder, created_by, updated_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
        RETURNING id
        """,
        tenant_id,
        values["sku"],
        values["name"],
        values["description"],
        values["attributes"],
        values["low_stock_threshold"],
        values["allow_backorder"],
        actor,
    )
    return item_id


async def insert_variant(
    db: Connection,
    *,
    tenant_id: str,
    item_id: UUID,
    sku: str,
    attributes: dict[str, Any],
    price: Decimal | None,
) -> UUID:
    try:
        variant_id: UUID = await db.fetchval(
            """
            INSERT INTO variant (tenant_id, item_id, sku, attributes, price, position)
            VALUES ($1, $2, $3, $4, $5,
                    (SELECT coalesce(max(position), 0) + 1 FROM variant
                     WHERE tenant_id = $1 AND item_id = $2))
            RETURNING id
            """,
            tenant_id,
            item_id,
            sku,
            attributes,
            price,
        )
    except asyncpg.UniqueViolationError as error:
        raise DuplicateSku(sku) from error
    return variant_id


async def get_item(db: Connection, *, tenant_id: str, item_id: UUID) -> Record | None:
    return await db.fetchrow(
        f"SELECT {ITEM_COLUMNS}, {VARIANTS_JSON}, {STOCK_JSON} FROM item "
        "WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        item_id,
    )


def _contains_pattern(text: str) -> str:
    """An ILIKE pattern matching names that contain `text` literally (`%`, `_` included)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


@dataclass(frozen=True)
class ItemFilter:
    sku: str | None = None
    query: str | None = None
    location_id: UUID | None = None
    low_stock: bool | None = None


async def list_items(
    db: Connection, *, tenant_id: str, keyset: Keyset, filters: ItemFilter
) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {ITEM_COLUMNS}, {VARIANTS_JSON}, {STOCK_JSON} FROM item
        WHERE tenant_id = $1
          AND ($2::text IS NULL OR id IN (SELECT item_id FROM sku
                                          WHERE tenant_id = $1 AND sku = $2))
          AND ($3::text IS NULL OR name ILIKE $3)
          AND ($4::uuid IS NULL OR EXISTS (
                SELECT 1 FROM stock_level s JOIN variant v
                  ON v.tenant_id = s.tenant_id AND v.id = s.variant_id
                WHERE s.tenant_id = $1 AND v.item_id = item.id AND s.location_id = $4))
          AND ($5::boolean IS NULL OR $5 = EXISTS (
                SELECT 1 FROM stock_level s JOIN variant v
                  ON v.tenant_id = s.tenant_id AND v.id = s.variant_id
                WHERE s.tenant_id = $1 AND v.item_id = item.id
                  AND s.on_hand - s.reserved <= {effective_threshold("s", "item")}))
          AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        filters.sku,
        _contains_pattern(filters.query) if filters.query is not None else None,
        filters.location_id,
        filters.low_stock,
        *keyset.arguments,
    )


async def update_item(
    db: Connection,
    *,
    tenant_id: str,
    item_id: UUID,
    changes: dict[str, Any],
    expected_version: int | None,
    actor: str,
) -> bool:
    """Apply `changes`; False when the item is missing or not at `expected_version`.

    A change of `allow_backorder` is copied onto the item's stock levels in the same
    transaction (their CHECK constraint reads it), after locking them in the global
    (variant, location) order that every stock change follows. Raises Oversold when
    backorders are turned off while a level has more reserved than on hand.
    """
    assignments = "".join(f"{column} = ${index}, " for index, column in enumerate(changes, start=5))
    status = await db.execute(
        f"""
        UPDATE item SET {assignments} version = version + 1, updated_by = $4, updated_at = now()
        WHERE tenant_id = $1 AND id = $2 AND ($3::int IS NULL OR version = $3)
        """,
        tenant_id,
        item_id,
        expected_version,
        actor,
        *changes.values(),
    )
    if status == "UPDATE 0":
        return False
    if "allow_backorder" in changes:
        oversold: int = await db.fetchval(
            """
            SELECT coalesce(sum(greatest(reserved - on_hand, 0)), 0)::bigint FROM (
                SELECT s.on_hand, s.reserved FROM stock_level s
                WHERE s.tenant_id = $1
                  AND s.variant_id IN (SELECT id FROM variant WHERE tenant_id = $1 AND item_id = $2)
                ORDER BY s.variant_id, s.location_id
                FOR UPDATE
            ) AS locked
            """,
            tenant_id,
            item_id,
        )
        if not changes["allow_backorder"] and oversold > 0:
            raise Oversold(oversold)
        await db.execute(
            """
            UPDATE stock_level SET allow_backorder = $3
            WHERE tenant_id = $1
              AND variant_id IN (SELECT id FROM variant WHERE tenant_id = $1 AND item_id = $2)
            """,
            tenant_id,
            item_id,
            changes["allow_backorder"],
        )
    if "low_stock_threshold" in changes:
        await change_thresholds(db, tenant_id=tenant_id, item_id=item_id)
    return True


async def item_reserved(db: Connection, *, tenant_id: str, item_id: UUID) -> int:
    """Units reserved across the item's levels, locking them against new reservations."""
    reserved: int = await db.fetchval(
        """
        SELECT coalesce(sum(reserved), 0)::bigint FROM (
            SELECT s.reserved FROM stock_level s
            WHERE s.tenant_id = $1
              AND s.variant_id IN (SELECT id FROM variant WHERE tenant_id = $1 AND item_id = $2)
            ORDER BY s.variant_id, s.location_id
            FOR UPDATE
        ) AS locked
        """,
        tenant_id,
        item_id,
    )
    return reserved


async def delete_item(
    db: Connection, *, tenant_id: str, item_id: UUID, expected_version: int | None
) -> bool:
    status = await db.execute(
        "DELETE FROM item WHERE tenant_id = $1 AND id = $2 AND ($3::int IS NULL OR version = $3)",
        tenant_id,
        item_id,
        expected_version,
    )
    return status != "DELETE 0"


async def variants_of(db: Connection, *, tenant_id: str, item_id: UUID) -> list[Record]:
    return await db.fetch(
        """
        SELECT v.id, v.sku, v.attributes, v.price::text AS price, v.version,
               i.allow_backorder
        FROM item i JOIN variant v ON v.tenant_id = i.tenant_id AND v.item_id = i.id
        WHERE i.tenant_id = $1 AND i.id = $2
        ORDER BY v.position
        """,
        tenant_id,
        item_id,
    )


async def update_variant(
    db: Connection,
    *,
    tenant_id: str,
    item_id: UUID,
    variant_id: UUID,
    changes: dict[str, Any],
    expected_version: int | None,
) -> Record | None:
    assignments = "".join(f"{column} = ${index}, " for index, column in enumerate(changes, start=5))
    try:
        return await db.fetchrow(
            f"""
            UPDATE variant SET {assignments} version = version + 1, updated_at = now()
            WHERE tenant_id = $1 AND item_id = $2 AND id = $3
              AND ($4::int IS NULL OR version = $4)
            RETURNING id, sku, attributes, price::text AS price, version
            """,
            tenant_id,
            item_id,
            variant_id,
            expected_version,
            *changes.values(),
        )
    except asyncpg.UniqueViolationError as error:
        raise DuplicateSku(changes.get("sku")) from error


async def lock_item(db: Connection, *, tenant_id: str, item_id: UUID) -> bool:
    """Lock the item's row until the transaction ends; False when there is no such item.

    Changes to the set of an item's variants take this lock first, so two of them cannot
    both see the other's variant still there.
    """
    locked = await db.fetchval(
        "SELECT true FROM item WHERE tenant_id = $1 AND id = $2 FOR NO KEY UPDATE",
        tenant_id,
        item_id,
    )
    return locked is not None


async def delete_variant(db: Connection, *, tenant_id: str, variant_id: UUID) -> None:
    await db.execute("DELETE FROM variant WHERE tenant_id = $1 AND id = $2", tenant_id, variant_id)


async def variant_reserved(db: Connection, *, tenant_id: str, variant_id: UUID) -> int:
    reserved: int = await db.fetchval(
        """
        SELECT coalesce(sum(reserved), 0)::bigint FROM (
            SELECT reserved FROM stock_level WHERE tenant_id = $1 AND variant_id = $2
            ORDER BY location_id FOR UPDATE
        ) AS locked
        """,
        tenant_id,
        variant_id,
    )
    return reserved


# --- stock --------------------------------------------------------------------------

# How each operation changes a level, and the condition under which it may (on `s`, the
# level's current row). $4 is the quantity.
CHANGES: dict[str, tuple[str, str, str]] = {
    # operation: (on_hand after, reserved after, condition)
    "add": ("s.on_hand + $4", "s.reserved", "TRUE"),
    "subtract": (
        "s.on_hand - $4",
        "s.reserved",
        "s.on_hand >= $4 AND (s.allow_backorder OR s.on_hand - s.reserved >= $4)",
    ),
    "reserve": (
        "s.on_hand",
        "s.reserved + $4",
        "(s.allow_backorder OR s.on_hand - s.reserved >= $4)",
    ),
    "release": ("s.on_hand", "s.reserved - $4", "s.reserved >= $4"),
    "set": ("$4", "s.reserved", "(s.allow_backorder OR $4 >= s.reserved)"),
}
# The level a missing row starts as, for operations that may create it: (on_hand, reserved).
CREATES: dict[str, tuple[str, str]] = {
    "add": ("$4", "0"),
    "set": ("$4", "0"),
    "reserve": ("0", "$4"),
}

# --- low stock and events, kept by every statement that changes a level ---------------
#
# A level's threshold is its own, else its item's, else the tenant's default; with none, it
# never alerts. `low_stock` says whether the level is at or below it. A change that makes it
# so while it was not (`s.low_stock` in a SET clause is the value *before* the change) is a
# downward crossing: `low_stock_version` and `low_stock_since` take the level's new version
# and the time, and the statement records `InventoryLowStock`. Later changes that stay at or
# below record nothing more; rising above the threshold re-arms the level. Row locking makes
# this exact under concurrency: each change sees the previous one's `low_stock`.

# The variant a stock statement changes ($1 the tenant, $2 the variant): its item, its SKU
# and the threshold its levels fall back to (the item's, else the tenant's default).
VARIANT_CONTEXT = f"""
context AS (
    SELECT v.item_id, v.sku,
           coalesce(i.low_stock_threshold,
                    {tenant_service.default_low_stock_threshold_sql("$1")}) AS fallback_threshold
    FROM variant v JOIN item i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
    WHERE v.tenant_id = $1 AND v.id = $2
)
"""
LEVEL_THRESHOLD = "coalesce(s.low_stock_threshold, (SELECT fallback_threshold FROM context))"
"""The threshold that applies to the level `s` (NULL when there is none)."""


def effective_threshold(level: str, item: str) -> str:
    """SQL: the threshold of the level aliased `level`, whose item is aliased `item`, in a
    statement whose $1 is the tenant."""
    return (
        f"coalesce({level}.low_stock_threshold, {item}.low_stock_threshold, "
        f"{tenant_service.default_low_stock_threshold_sql('$1')})"
    )


def _is_low(available: str, threshold: str) -> str:
    """SQL: whether `available` is at or below `threshold` (never, without a threshold)."""
    return f"coalesce({available} <= {threshold}, false)"


def _alert_state(available_after: str, version_after: str, threshold: str = LEVEL_THRESHOLD) -> str:
    """SET clauses keeping the low-stock state of the level `s` as it changes."""
    low = _is_low(available_after, threshold)
    crossing = f"{low} AND NOT s.low_stock"
    return f"""low_stock = {low},
            low_stock_version = CASE WHEN {crossing} THEN {version_after}
                                     ELSE s.low_stock_version END,
            low_stock_since = CASE WHEN {crossing} THEN clock_timestamp()
                                   ELSE s.low_stock_since END"""


INVENTORY_UPDATED_DATA = """jsonb_build_object(
    'item_id', c.item_id, 'variant_id', m.variant_id, 'sku', c.sku,
    'location_id', m.location_id, 'on_hand', m.on_hand_after, 'reserved', m.reserved_after,
    'available', m.on_hand_after - m.reserved_after, 'version', m.level_version,
    'movement_id', m.id, 'operation', m.operation, 'quantity', m.quantity,
    'reason', m.reason, 'reference', m.reference)"""
LOW_STOCK_DATA = """jsonb_build_object(
    'item_id', c.item_id, 'variant_id', l.variant_id, 'sku', c.sku,
    'location_id', l.location_id, 'on_hand', l.on_hand, 'reserved', l.reserved,
    'available', l.on_hand - l.reserved, 'threshold', l.threshold, 'version', l.version)"""
EVENT_SUBJECT = "'inventory/' || c.item_id"
"""Every inventory event's subject is its item, `inventory/<item_id>`."""

# The events of a stock statement whose CTEs `context`, `level` (the changed level, with its
# `threshold`) and `movement` (its movements) came before: one `InventoryUpdated` per
# movement and, after them, `InventoryLowStock` if the level crossed its threshold downward.
RECORD_EVENTS = f"""
, recorded AS (
    {event_service.OUTBOX_INSERT}
    SELECT tenant_id, type, subject, data FROM (
        SELECT m.tenant_id, m.level_version AS version, 1 AS position,
               '{EventType.INVENTORY_UPDATED}' AS type, {EVENT_SUBJECT} AS subject,
               {INVENTORY_UPDATED_DATA} AS data
        FROM movement m CROSS JOIN context c
        UNION ALL
        SELECT l.tenant_id, l.version, 2, '{EventType.INVENTORY_LOW_STOCK}', {EVENT_SUBJECT},
               {LOW_STOCK_DATA}
        FROM level l CROSS JOIN context c
        WHERE l.low_stock_version = l.version
    ) AS change
    ORDER BY version, position
)
""" + event_service.outbox_notify_cte("$1")

LEVEL_AND_MOVEMENT = (
    """
, movement AS (
    INSERT INTO stock_movement (tenant_id, variant_id, location_id, level_version, operation,
                                quantity, on_hand_after, reserved_after, reason, note,
                                reference, actor, created_at)
    SELECT tenant_id, variant_id, location_id, version, $6, $4, on_hand, reserved,
           $7, $8, $9, $10, clock_timestamp()
    FROM level
    RETURNING tenant_id, id, variant_id, location_id, level_version, operation, quantity,
              on_hand_after, reserved_after, reason, note, reference, actor, created_at
)
"""
    + RECORD_EVENTS
    + """
SELECT level.variant_id, level.location_id, level.on_hand, level.reserved,
       level.low_stock_threshold, level.version,
       movement.id AS movement_id, movement.operation, movement.quantity,
       movement.on_hand_after, movement.reserved_after, movement.reason, movement.note,
       movement.reference, movement.actor, movement.created_at
FROM level CROSS JOIN movement
WHERE """
    + event_service.OUTBOX_NOTIFIED
    + """
"""
)


def _update_statement(operation: str) -> str:
    on_hand, reserved, condition = CHANGES[operation]
    return (
        f"""
    WITH {VARIANT_CONTEXT}, level AS (
        UPDATE stock_level AS s
        SET on_hand = {on_hand}, reserved = {reserved}, version = s.version + 1,
            updated_at = now(),
            {_alert_state(f"({on_hand}) - ({reserved})", "s.version + 1")}
        WHERE s.tenant_id = $1 AND s.variant_id = $2 AND s.location_id = $3
          AND {condition} AND ($5::int IS NULL OR s.version = $5)
        RETURNING s.*, {LEVEL_THRESHOLD} AS threshold
    )
    """
        + LEVEL_AND_MOVEMENT
    )


def _upsert_statement(operation: str) -> str:
    """A change that creates the level when it is missing. A level created at or below its
    threshold counts as crossing it (at version 1): it is low from the start."""
    on_hand, reserved, condition = CHANGES[operation]
    initial_on_hand, initial_reserved = CREATES[operation]
    created_low = _is_low(
        f"({initial_on_hand})::bigint - ({initial_reserved})::bigint",
        "(SELECT fallback_threshold FROM context)",
    )
    return (
        f"""
    WITH {VARIANT_CONTEXT}, level AS (
        INSERT INTO stock_level AS s
            (tenant_id, variant_id, location_id, on_hand, reserved, allow_backorder,
             low_stock, low_stock_version, low_stock_since)
        VALUES ($1, $2, $3, {initial_on_hand}, {initial_reserved}, $11,
                {created_low},
                CASE WHEN {created_low} THEN 1 END,
                CASE WHEN {created_low} THEN clock_timestamp() END)
        ON CONFLICT (tenant_id, variant_id, location_id) DO UPDATE
        SET on_hand = {on_hand}, reserved = {reserved}, version = s.version + 1,
            updated_at = now(),
            {_alert_state(f"({on_hand}) - ({reserved})", "s.version + 1")}
        WHERE {condition} AND ($5::int IS NULL OR s.version = $5)
        RETURNING s.*, {LEVEL_THRESHOLD} AS threshold
    )
    """
        + LEVEL_AND_MOVEMENT
    )


UPDATE_STATEMENTS = {operation: _update_statement(operation) for operation in CHANGES}
UPSERT_STATEMENTS = {operation: _upsert_statement(operation) for operation in CREATES}


@dataclass(frozen=True)
class Change:
    variant_id: UUID
    location_id: UUID
    operation: str
    quantity: int
    reason: str
    note: str | None
    reference: str | None
    expected_version: int | None
    allow_backorder: bool


async def apply(db: Connection, *, tenant_id: str, change: Change, actor: str) -> Record | None:
    """Apply one stock change and write its movement, in one statement.

    Returns the level and movement, or None when the operation's condition (or the expected
    version) refused it. `expected_version` 0 names a level that does not exist yet (every
    existing level is at version 1 or more). Raises UnknownLocation when a level would be
    created at a location that does not exist; the statement failed, so the transaction is
    aborted and can run nothing more.
    """
    may_create = change.operation in CREATES and change.expected_version in (None, 0)
    if change.operation == "reserve" and not change.allow_backorder:
        may_create = False
    statement = (UPSERT_STATEMENTS if may_create else UPDATE_STATEMENTS)[change.operation]
    arguments: list[Any] = [
        tenant_id,
        change.variant_id,
        change.location_id,
        change.quantity,
        change.expected_version,
        change.operation,
        change.reason,
        change.note,
        change.reference,
        actor,
    ]
    if may_create:
        arguments.append(change.allow_backorder)
    try:
        row = await db.fetchrow(statement, *arguments)
    except asyncpg.ForeignKeyViolationError as error:
        raise UnknownLocation(change.location_id) from error
    if row is not None:
        _count_movements(change.operation)
    return row


# Reserving at several existing levels at once, all or nothing, in one statement (placing
# an order, a hold). `decided` locks every level in the global lock order (variant id,
# location id) and checks the `reserve` rule on each as it is once locked
# (`shelfkeeper_lock_levels_to_reserve`, migration 0018); when a level is missing or cannot
# take its units, it drops the locks it took and answers false, and nothing changes. Only
# then does `level` change them, each with the same condition as a single `reserve` (a
# level changed since the statement's snapshot is updated in its latest version, the one
# that was checked). Movements and `InventoryUpdated` and `InventoryLowStock` events as a
# single `reserve` writes them, level by level in the lock order. $2, $3, $4: the levels'
# variants, locations and quantities (one entry per level); $5 to $8: reason, note,
# reference, actor.
BATCH_THRESHOLD = "coalesce(s.low_stock_threshold, c.fallback_threshold)"
BATCH_FITS = CHANGES["reserve"][2].replace("$4", "w.quantity")
BATCH_ALERT_STATE = _alert_state(
    "s.on_hand - (s.reserved + w.quantity)", "s.version + 1", threshold=BATCH_THRESHOLD
)
RESERVE_LEVELS_STATEMENT = (
    f"""
WITH decided AS MATERIALIZED (
    SELECT shelfkeeper_lock_levels_to_reserve($1, $2::uuid[], $3::uuid[], $4::bigint[])
           AS all_fit
),
wanted AS MATERIALIZED (
    SELECT w.variant_id, w.location_id, w.quantity
    FROM unnest($2::uuid[], $3::uuid[], $4::bigint[]) AS w(variant_id, location_id, quantity)
),
context AS MATERIALIZED (
    SELECT v.id AS variant_id, v.item_id, v.sku,
           coalesce(i.low_stock_threshold,
                    {tenant_service.default_low_stock_threshold_sql("$1")}) AS fallback_threshold
    FROM variant v JOIN item i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
    WHERE v.tenant_id = $1 AND v.id = ANY($2::uuid[])
),
level AS (
    UPDATE stock_level AS s
    SET reserved = s.reserved + w.quantity, version = s.version + 1, updated_at = now(),
        {BATCH_ALERT_STATE}
    FROM wanted w, context c
    WHERE (SELECT all_fit FROM decided) AND s.tenant_id = $1
      AND s.variant_id = w.variant_id AND s.location_id = w.location_id
      AND c.variant_id = w.variant_id
      AND {BATCH_FITS}
    RETURNING s.*, {BATCH_THRESHOLD} AS threshold, w.quantity AS change_quantity
),
movement AS (
    INSERT INTO stock_movement (tenant_id, variant_id, location_id, level_version, operation,
                                quantity, on_hand_after, reserved_after, reason, note,
                                reference, actor, created_at)
    SELECT tenant_id, variant_id, location_id, version, 'reserve', change_quantity, on_hand,
           reserved, $5, $6, $7, $8, clock_timestamp()
    FROM level
    ORDER BY variant_id, location_id
    RETURNING tenant_id, id, variant_id, location_id, level_version, operation, quantity,
              on_hand_after, reserved_after, reason, note, reference, actor, created_at
),
recorded AS (
    {event_service.OUTBOX_INSERT}
    SELECT tenant_id, type, subject, data FROM (
        SELECT m.tenant_id, m.variant_id, m.location_id, m.level_version AS version,
               1 AS position, '{EventType.INVENTORY_UPDATED}' AS type,
               {EVENT_SUBJECT} AS subject, {INVENTORY_UPDATED_DATA} AS data
        FROM movement m JOIN context c ON c.variant_id = m.variant_id
        UNION ALL
        SELECT l.tenant_id, l.variant_id, l.location_id, l.version, 2,
               '{EventType.INVENTORY_LOW_STOCK}', {EVENT_SUBJECT}, {LOW_STOCK_DATA}
        FROM level l JOIN context c ON c.variant_id = l.variant_id
        WHERE l.low_stock_version = l.version
    ) AS change
    ORDER BY variant_id, location_id, version, position
)
"""
    + event_service.outbox_notify_cte("$1")
    + f"""
SELECT count(*) FROM movement WHERE {event_service.OUTBOX_NOTIFIED}
"""
)


async def reserve_levels(
    db: Connection,
    *,
    tenant_id: str,
    levels: Sequence[tuple[UUID, UUID, int]],
    reason: str,
    note: str | None,
    reference: str | None,
    actor: str,
) -> bool:
    """Reserve `(variant_id, location_id, quantity)` at each of several existing levels, all
    or nothing, in one statement (`RESERVE_LEVELS_STATEMENT`); the levels must be distinct.

    Returns whether they were reserved (each with its movement and events). False when a
    level does not exist or cannot take its units: then nothing changed and no level is
    left locked.
    """
    reserved: int = await db.fetchval(
        RESERVE_LEVELS_STATEMENT,
        tenant_id,
        [variant_id for variant_id, _, _ in levels],
        [location_id for _, location_id, _ in levels],
        [quantity for _, _, quantity in levels],
        reason,
        note,
        reference,
        actor,
    )
    if reserved == 0:
        return False
    if reserved != len(levels):
        # The levels were locked and checked first: each update must follow.
        raise RuntimeError(f"reserved {reserved} of {len(levels)} locked levels")
    _count_movements(*(["reserve"] * reserved))
    return True


def _count_movements(*operations: str) -> None:
    """Count the movements just written once their transaction commits: every movement is
    written here (`apply`, `ship`), so they are counted in this one place."""
    for operation in operations:
        recording.after_commit(partial(metrics.count_stock_movement, operation))


async def get_level(
    db: Connection, *, tenant_id: str, variant_id: UUID, location_id: UUID
) -> Record | None:
    return await db.fetchrow(
        """
        SELECT variant_id, location_id, on_hand, reserved, low_stock_threshold, version,
               allow_backorder
        FROM stock_level WHERE tenant_id = $1 AND variant_id = $2 AND location_id = $3
        """,
        tenant_id,
        variant_id,
        location_id,
    )


# Thresholds changed on a level or an item: the levels concerned are locked in the global
# order, their low-stock state is evaluated afresh against the threshold that now applies,
# and each one that is now at or below it while it was not records `InventoryLowStock` (a
# crossing caused by the threshold: `low_stock_version` is the level's current version, which
# does not change, since no stock moved). $1 tenant, $2 item; $3 and $4 narrow the change to
# one variant and location; when $5 is true the levels' own threshold becomes $6; $7 is the
# expected level version (or NULL).
THRESHOLD_NOW = (
    "coalesce(CASE WHEN $5 THEN $6::int ELSE s.low_stock_threshold END, "
    "(SELECT coalesce(item_threshold, tenant_threshold) FROM context))"
)
THRESHOLD_STATEMENT = f"""
WITH context AS (
    SELECT i.id AS item_id, i.sku AS item_sku, i.name AS item_name,
           i.low_stock_threshold AS item_threshold,
           {tenant_service.default_low_stock_threshold_sql("$1")} AS tenant_threshold
    FROM item i WHERE i.tenant_id = $1 AND i.id = $2
), locked AS MATERIALIZED (
    SELECT s.variant_id, s.location_id, s.low_stock AS was_low
    FROM stock_level s
    WHERE s.tenant_id = $1
      AND s.variant_id IN (SELECT id FROM variant WHERE tenant_id = $1 AND item_id = $2)
      AND ($3::uuid IS NULL OR s.variant_id = $3) AND ($4::uuid IS NULL OR s.location_id = $4)
      AND ($7::int IS NULL OR s.version = $7)
    ORDER BY s.variant_id, s.location_id
    FOR NO KEY UPDATE
), level AS (
    UPDATE stock_level AS s
    SET low_stock_threshold = CASE WHEN $5 THEN $6::int ELSE s.low_stock_threshold END,
        updated_at = now(),
        {_alert_state("s.on_hand - s.reserved", "s.version", threshold=THRESHOLD_NOW)}
    FROM locked
    WHERE s.tenant_id = $1 AND s.variant_id = locked.variant_id
      AND s.location_id = locked.location_id
    RETURNING s.*, locked.was_low
), status AS (
    SELECT l.*, v.sku, c.item_id, c.item_sku, c.item_name,
           coalesce(l.low_stock_threshold, c.item_threshold, c.tenant_threshold) AS threshold,
           CASE WHEN l.low_stock_threshold IS NOT NULL THEN 'level'
                WHEN c.item_threshold IS NOT NULL THEN 'item'
                WHEN c.tenant_threshold IS NOT NULL THEN 'tenant' END AS threshold_source
    FROM level l
    CROSS JOIN context c
    JOIN variant v ON v.tenant_id = l.tenant_id AND v.id = l.variant_id
), recorded AS (
    {event_service.OUTBOX_INSERT}
    SELECT l.tenant_id, '{EventType.INVENTORY_LOW_STOCK}', {EVENT_SUBJECT},
           {LOW_STOCK_DATA}
    FROM status l CROSS JOIN LATERAL (SELECT l.item_id, l.sku) AS c
    WHERE l.low_stock AND NOT l.was_low
    ORDER BY l.variant_id, l.location_id
)
{event_service.outbox_notify_cte("$1")}
SELECT * FROM status WHERE {event_service.OUTBOX_NOTIFIED} ORDER BY variant_id, location_id
"""


async def change_thresholds(
    db: Connection,
    *,
    tenant_id: str,
    item_id: UUID,
    variant_id: UUID | None = None,
    location_id: UUID | None = None,
    set_level_threshold: bool = False,
    level_threshold: int | None = None,
    expected_version: int | None = None,
) -> list[Record]:
    """Re-evaluate the low-stock state of the item's levels (those of `variant_id` at
    `location_id` when given), after setting their own threshold to `level_threshold` when
    `set_level_threshold`; record `InventoryLowStock` for each that crosses. Returns each
    level changed with its alert status (see `ALERT_COLUMNS`); none when there is no such
    level or it is not at `expected_version`."""
    return await db.fetch(
        THRESHOLD_STATEMENT,
        tenant_id,
        item_id,
        variant_id,
        location_id,
        set_level_threshold,
        level_threshold,
        expected_version,
    )


ALERT_COLUMNS = """
    variant_id, location_id, on_hand, reserved, low_stock_threshold, version, low_stock,
    low_stock_version, low_stock_since, sku, item_id, item_sku, item_name, threshold,
    threshold_source
"""


async def list_alerts(
    db: Connection, *, tenant_id: str, location_id: UUID | None, keyset: Keyset
) -> list[Record]:
    """A page of the levels whose available stock is at or below their threshold, by
    variant SKU and then location (the keyset's `sku` and `id`; `id` is the location)."""
    return await db.fetch(
        f"""
        SELECT {ALERT_COLUMNS} FROM (
            SELECT s.variant_id, s.location_id, s.location_id AS id, s.on_hand, s.reserved,
                   s.low_stock_threshold, s.version, s.low_stock, s.low_stock_version,
                   s.low_stock_since, v.sku, i.id AS item_id, i.sku AS item_sku,
                   i.name AS item_name, {effective_threshold("s", "i")} AS threshold,
                   CASE WHEN s.low_stock_threshold IS NOT NULL THEN 'level'
                        WHEN i.low_stock_threshold IS NOT NULL THEN 'item'
                        ELSE 'tenant' END AS threshold_source
            FROM stock_level s
            JOIN variant v ON v.tenant_id = s.tenant_id AND v.id = s.variant_id
            JOIN item i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
            WHERE s.tenant_id = $1 AND ($2::uuid IS NULL OR s.location_id = $2)
        ) AS alert
        WHERE on_hand - reserved <= threshold AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        location_id,
        *keyset.arguments,
    )


async def item_levels(db: Connection, *, tenant_id: str, item_id: UUID) -> list[Record]:
    """The item's levels as they are now, by variant position and location."""
    return await db.fetch(
        """
        SELECT s.variant_id, s.location_id, s.on_hand, s.reserved, s.low_stock_threshold,
               s.version
        FROM stock_level s JOIN variant v ON v.tenant_id = s.tenant_id AND v.id = s.variant_id
        WHERE s.tenant_id = $1 AND v.item_id = $2
        ORDER BY v.position, s.location_id
        """,
        tenant_id,
        item_id,
    )


async def item_levels_as_of(
    db: Connection, *, tenant_id: str, item_id: UUID, as_of: datetime
) -> list[Record]:
    """What each of the item's levels held at `as_of`, from the ledger: the state after the
    level's last movement at or before then (by `created_at`, then `level_version`). Levels
    without a movement by then are left out. `low_stock_threshold` is the level's current
    one: thresholds are not part of the ledger."""
    return await db.fetch(
        """
        SELECT s.variant_id, s.location_id, last.on_hand_after AS on_hand,
               last.reserved_after AS reserved, s.low_stock_threshold,
               last.level_version AS version
        FROM stock_level s
        JOIN variant v ON v.tenant_id = s.tenant_id AND v.id = s.variant_id
        CROSS JOIN LATERAL (
            SELECT m.on_hand_after, m.reserved_after, m.level_version
            FROM stock_movement m
            WHERE m.tenant_id = s.tenant_id AND m.variant_id = s.variant_id
              AND m.location_id = s.location_id AND m.created_at <= $3
            ORDER BY m.created_at DESC, m.level_version DESC
            LIMIT 1
        ) AS last
        WHERE s.tenant_id = $1 AND v.item_id = $2
        ORDER BY v.position, s.location_id
        """,
        tenant_id,
        item_id,
        as_of,
    )


async def list_movements(
    db: Connection,
    *,
    tenant_id: str,
    item_id: UUID,
    location_id: UUID | None,
    variant_id: UUID | None,
    keyset: Keyset,
) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {MOVEMENT_COLUMNS} FROM stock_movement
        WHERE tenant_id = $1
          AND variant_id IN (SELECT id FROM variant WHERE tenant_id = $1 AND item_id = $2)
          AND ($3::uuid IS NULL OR location_id = $3)
          AND ($4::uuid IS NULL OR variant_id = $4)
          AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        item_id,
        location_id,
        variant_id,
        *keyset.arguments,
    )


async def resolve_sku(db: Connection, *, tenant_id: str, sku: str) -> Record | None:
    """The variant (and its item's backorder flag) a variant SKU names."""
    return await db.fetchrow(
        """
        SELECT v.id, v.item_id, i.allow_backorder
        FROM variant v JOIN item i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
        WHERE v.tenant_id = $1 AND v.sku = $2
        """,
        tenant_id,
        sku,
    )


async def get_variant(db: Connection, *, tenant_id: str, variant_id: UUID) -> Record | None:
    return await db.fetchrow(
        """
        SELECT v.id, v.item_id, v.sku, i.allow_backorder
        FROM variant v JOIN item i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
        WHERE v.tenant_id = $1 AND v.id = $2
        """,
        tenant_id,
        variant_id,
    )


async def lock_reserved(
    db: Connection, *, tenant_id: str, variant_id: UUID, location_id: UUID
) -> int | None:
    """The level's reserved units, locking the level until the transaction ends."""
    reserved: int | None = await db.fetchval(
        """
        SELECT reserved FROM stock_level
        WHERE tenant_id = $1 AND variant_id = $2 AND location_id = $3
        FOR NO KEY UPDATE
        """,
        tenant_id,
        variant_id,
        location_id,
    )
    return reserved


async def levels_of_variants(
    db: Connection, *, tenant_id: str, variant_ids: list[UUID]
) -> list[Record]:
    """Every level of the variants (a plain read: no lock is taken)."""
    return await db.fetch(
        """
        SELECT variant_id, location_id, on_hand, reserved FROM stock_level
        WHERE tenant_id = $1 AND variant_id = ANY($2::uuid[])
        """,
        tenant_id,
        variant_ids,
    )


async def find_variants(
    db: Connection, *, tenant_id: str, variant_ids: list[UUID], skus: list[str]
) -> list[Record]:
    """The variants with these ids or variant SKUs, with their item's backorder flag."""
    return await db.fetch(
        """
        SELECT v.id, v.sku, i.allow_backorder
        FROM variant v JOIN item i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
        WHERE v.tenant_id = $1 AND (v.id = ANY($2::uuid[]) OR v.sku = ANY($3::text[]))
        """,
        tenant_id,
        variant_ids,
        skus,
    )


async def variants_for_references(
    db: Connection,
    *,
    tenant_id: str,
    variant_ids: list[UUID],
    item_ids: list[UUID],
    skus: list[str],
) -> list[Record]:
    """Every variant that an id, an item id or a SKU (an item's or a variant's) may name.

    Each row: the variant (`id`, `item_id`, `sku`, `price` as text), its item's `item_sku`
    and `allow_backorder`, `siblings`, how many variants the item has, and its levels as
    two arrays in the same order, `level_locations` and `level_available` (`on_hand -
    reserved`, a plain read): what placing an order needs to plan, without a round trip of
    its own (each by the primary key's prefix).

    Each way of naming is a join of the given values to a primary key, and each named item's
    variants are found by index (LATERAL), so no plan can read all of a tenant's items or
    variants: the earlier single `WHERE` with three OR-ed conditions read every variant of
    the tenant (110 ms on a tenant with 100,000 items), and `id = ANY($n)` filters on an
    empty array let the generic plan scan a whole tenant's index (docs/benchmarks.md).
    """
    return await db.fetch(
        """
        WITH named AS (
            -- (item, the one variant named, or NULL: all the item's variants)
            SELECT item.id AS item_id, NULL::uuid AS variant_id
            FROM unnest($3::uuid[]) AS wanted(id)
            JOIN item ON item.tenant_id = $1 AND item.id = wanted.id
            UNION
            SELECT sku.item_id, NULL::uuid
            FROM unnest($4::text[]) AS wanted(sku)
            JOIN sku ON sku.tenant_id = $1 AND sku.sku = wanted.sku
            UNION
            SELECT variant.item_id, variant.id
            FROM unnest($2::uuid[]) AS wanted(id)
            JOIN variant ON variant.tenant_id = $1 AND variant.id = wanted.id
        )
        SELECT DISTINCT ON (v.item_id, v.position)
               v.id, v.item_id, v.sku, v.price::text AS price, i.sku AS item_sku,
               i.allow_backorder,
               (SELECT count(*) FROM variant w
                WHERE w.tenant_id = v.tenant_id AND w.item_id = v.item_id) AS siblings,
               levels.level_locations, levels.level_available
        FROM named
        CROSS JOIN LATERAL (
            -- OFFSET 0 keeps this a per-item index lookup (never pulled up into a join
            -- that may read the tenant's every variant)
            SELECT * FROM variant WHERE tenant_id = $1 AND item_id = named.item_id OFFSET 0
        ) AS v
        JOIN item i ON i.tenant_id = v.tenant_id AND i.id = v.item_id
        CROSS JOIN LATERAL (
            -- the variant's levels, by the primary key's prefix (one scan)
            SELECT coalesce(array_agg(s.location_id ORDER BY s.location_id), '{}')
                       AS level_locations,
                   coalesce(array_agg(s.on_hand - s.reserved ORDER BY s.location_id), '{}')
                       AS level_available
            FROM stock_level s WHERE s.tenant_id = v.tenant_id AND s.variant_id = v.id
        ) AS levels
        WHERE named.variant_id IS NULL OR v.id = named.variant_id
        ORDER BY v.item_id, v.position
        """,
        tenant_id,
        variant_ids,
        item_ids,
        skus,
    )


# Shipping reserved units: the reservation is used up and the units leave, in one statement
# that writes two movements, so that the ledger replays with its ordinary operations: a
# `release` (level version + 1) and a `subtract` (level version + 2), each with its
# `InventoryUpdated`. Available stock does not change, but the low-stock state is kept all
# the same (the threshold may have changed since the level's last change). $4 is the quantity.
SHIP_STATEMENT = (
    f"""
WITH {VARIANT_CONTEXT}, level AS (
    UPDATE stock_level AS s
    SET on_hand = s.on_hand - $4, reserved = s.reserved - $4, version = s.version + 2,
        updated_at = now(),
        {_alert_state("s.on_hand - s.reserved", "s.version + 2")}
    WHERE s.tenant_id = $1 AND s.variant_id = $2 AND s.location_id = $3
      AND s.reserved >= $4 AND s.on_hand >= $4
    RETURNING s.*, {LEVEL_THRESHOLD} AS threshold
), movement AS (
    INSERT INTO stock_movement (tenant_id, variant_id, location_id, level_version, operation,
                                quantity, on_hand_after, reserved_after, reason, note,
                                reference, actor, created_at)
    SELECT tenant_id, variant_id, location_id, version - 1, 'release', $4, on_hand + $4,
           reserved, $5, $6, $7, $8, clock_timestamp()
    FROM level
    UNION ALL
    SELECT tenant_id, variant_id, location_id, version, 'subtract', $4, on_hand, reserved,
           $5, $6, $7, $8, clock_timestamp()
    FROM level
    RETURNING tenant_id, id, variant_id, location_id, level_version, operation, quantity,
              on_hand_after, reserved_after, reason, reference
)
"""
    + RECORD_EVENTS
    + """
SELECT level.on_hand, level.reserved, level.version FROM level
WHERE """
    + event_service.OUTBOX_NOTIFIED
    + """
"""
)


async def ship(
    db: Connection,
    *,
    tenant_id: str,
    variant_id: UUID,
    location_id: UUID,
    quantity: int,
    reason: str,
    note: str | None,
    reference: str | None,
    actor: str,
) -> Record | None:
    """Turn `quantity` reserved units into a deduction (on_hand and reserved both fall).

    One conditional statement: None when fewer units are reserved or on hand.
    """
    row = await db.fetchrow(
        SHIP_STATEMENT,
        tenant_id,
        variant_id,
        location_id,
        quantity,
        reason,
        note,
        reference,
        actor,
    )
    if row is not None:
        _count_movements("release", "subtract")
    return row


# --- coalesced reservations (the flash-sale fast path, see inventory/coalescer.py) -----
#
# One statement reserves for a whole batch of requests on one level, in arrival order: a
# recursive walk decides each request against what the requests before it left (exactly
# what one statement per request, committed in that order, would decide), then ONE update
# moves the level by the accepted total, and one movement and one `InventoryUpdated` per
# accepted request are written, each with the level as it stood after that request
# (`level_version` is the version after it). A downward threshold crossing inside the batch
# records `InventoryLowStock` at the request that crossed. The caller locks the level first
# (`lock_level`), so the walk reads the row as it is; the update still checks the version the
# walk read, and the CHECK constraints still forbid an oversell.

RESERVE_BATCH_STATEMENT = (
    f"""
WITH RECURSIVE {VARIANT_CONTEXT},
base AS (
    SELECT s.on_hand, s.reserved, s.version, s.allow_backorder, s.low_stock,
           {LEVEL_THRESHOLD} AS threshold
    FROM stock_level s
    WHERE s.tenant_id = $1 AND s.variant_id = $2 AND s.location_id = $3
),
request AS (
    SELECT r.position::int AS position, r.quantity, r.reason, r.note, r.reference, r.actor
    FROM unnest($4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[])
         WITH ORDINALITY AS r(quantity, reason, note, reference, actor, position)
),
walk AS (
    SELECT 0 AS position, false AS accepted, b.reserved, b.version, b.low_stock AS low,
           false AS crossed
    FROM base b
    UNION ALL
    SELECT r.position, step.accepted,
           w.reserved + CASE WHEN step.accepted THEN r.quantity ELSE 0 END,
           w.version + step.accepted::int,
           CASE WHEN step.accepted THEN step.low_after ELSE w.low END,
           step.accepted AND step.low_after AND NOT w.low
    FROM walk w
    JOIN request r ON r.position = w.position + 1
    CROSS JOIN base b
    CROSS JOIN LATERAL (
        SELECT (b.allow_backorder OR b.on_hand - w.reserved >= r.quantity) AS accepted,
               {_is_low("b.on_hand - (w.reserved + r.quantity)", "b.threshold")} AS low_after
    ) AS step
),
steps AS (SELECT * FROM walk WHERE position > 0),
final AS (SELECT * FROM steps ORDER BY position DESC LIMIT 1),
crossing AS (SELECT version FROM steps WHERE crossed),
level AS (
    UPDATE stock_level AS s
    SET reserved = f.reserved, version = f.version, updated_at = now(),
        low_stock = f.low,
        low_stock_version = coalesce((SELECT version FROM crossing), s.low_stock_version),
        low_stock_since = CASE WHEN EXISTS (SELECT FROM crossing) THEN clock_timestamp()
                               ELSE s.low_stock_since END
    FROM final f CROSS JOIN base b
    WHERE s.tenant_id = $1 AND s.variant_id = $2 AND s.location_id = $3
      AND f.version > b.version AND s.version = b.version
      AND (s.allow_backorder OR s.on_hand >= f.reserved)
    RETURNING s.tenant_id, s.variant_id, s.location_id, s.on_hand, s.low_stock_threshold
),
movement AS (
    INSERT INTO stock_movement (tenant_id, variant_id, location_id, level_version, operation,
                                quantity, on_hand_after, reserved_after, reason, note,
                                reference, actor, created_at)
    SELECT l.tenant_id, l.variant_id, l.location_id, w.version, 'reserve', r.quantity,
           l.on_hand, w.reserved, r.reason, r.note, r.reference, r.actor, clock_timestamp()
    FROM steps w JOIN request r USING (position) CROSS JOIN level l
    WHERE w.accepted
    ORDER BY w.position
    RETURNING tenant_id, id, variant_id, location_id, level_version, operation, quantity,
              on_hand_after, reserved_after, reason, note, reference, actor, created_at
),
recorded AS (
    {event_service.OUTBOX_INSERT}
    SELECT tenant_id, type, subject, data FROM (
        SELECT m.tenant_id, m.level_version AS version, 1 AS position,
               '{EventType.INVENTORY_UPDATED}' AS type, {EVENT_SUBJECT} AS subject,
               {INVENTORY_UPDATED_DATA} AS data
        FROM movement m CROSS JOIN context c
        UNION ALL
        SELECT l.tenant_id, w.version, 2, '{EventType.INVENTORY_LOW_STOCK}', {EVENT_SUBJECT},
               jsonb_build_object(
                   'item_id', c.item_id, 'variant_id', l.variant_id, 'sku', c.sku,
                   'location_id', l.location_id, 'on_hand', l.on_hand,
                   'reserved', w.reserved, 'available', l.on_hand - w.reserved,
                   'threshold', b.threshold, 'version', w.version)
        FROM steps w CROSS JOIN level l CROSS JOIN context c CROSS JOIN base b
        WHERE w.crossed
    ) AS change
    ORDER BY version, position
),
due AS (
    SELECT EXISTS (SELECT FROM steps WHERE NOT accepted) AND EXISTS (
        SELECT FROM reservation_line rl
        JOIN reservation rv ON rv.tenant_id = rl.tenant_id AND rv.id = rl.reservation_id
        WHERE rl.tenant_id = $1 AND rl.variant_id = $2 AND rl.location_id = $3
          AND rv.status = 'held' AND rv.expires_at <= now()
    ) AS holds
)
"""
    + event_service.outbox_notify_cte("$1")
    + f"""
SELECT w.position, w.accepted, b.on_hand - (w.reserved - CASE WHEN w.accepted
                                                          THEN r.quantity ELSE 0 END)
           AS available_before,
       (SELECT holds FROM due) AS due_holds,
       $2::uuid AS variant_id, $3::uuid AS location_id, b.on_hand, w.reserved,
       (SELECT low_stock_threshold FROM level) AS low_stock_threshold, w.version,
       m.id AS movement_id, m.operation, m.quantity, m.on_hand_after, m.reserved_after,
       m.reason, m.note, m.reference, m.actor, m.created_at
FROM steps w
JOIN request r USING (position)
CROSS JOIN base b
LEFT JOIN movement m ON w.accepted AND m.level_version = w.version
WHERE {event_service.OUTBOX_NOTIFIED}
ORDER BY w.position
"""
)


@dataclass(frozen=True)
class Reservation:
    """One request of a coalesced batch: reserve `quantity` units."""

    quantity: int
    reason: str
    note: str | None
    reference: str | None
    actor: str


async def lock_level(
    db: Connection, *, tenant_id: str, variant_id: UUID, location_id: UUID
) -> bool:
    """Lock a level for the rest of the transaction; False when it does not exist."""
    locked = await db.fetchval(
        """
        SELECT true FROM stock_level
        WHERE tenant_id = $1 AND variant_id = $2 AND location_id = $3
        FOR UPDATE
        """,
        tenant_id,
        variant_id,
        location_id,
    )
    return bool(locked)


async def reserve_batch(
    db: Connection,
    *,
    tenant_id: str,
    variant_id: UUID,
    location_id: UUID,
    requests: Sequence[Reservation],
) -> list[Record]:
    """Reserve for every request that fits, in order, in one statement (the level locked by
    `lock_level` first). One row per request, in order: `accepted`, `available_before` (what
    was available when it was decided), `due_holds` (refusals happened while the level has
    due holds that expiring would free), and for an accepted one the level after it and its
    movement, in the columns `apply` returns. No rows: the level does not exist."""
    return await db.fetch(
        RESERVE_BATCH_STATEMENT,
        tenant_id,
        variant_id,
        location_id,
        [request.quantity for request in requests],
        [request.reason for request in requests],
        [request.note for request in requests],
        [request.reference for request in requests],
        [request.actor for request in requests],
    )


async def low_stock_count(db: Connection, *, tenant_id: str) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM stock_level WHERE tenant_id = $1 AND low_stock", tenant_id
    )
    return count
