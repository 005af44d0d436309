"""Scale data: many tenants, items, movements and orders, written with COPY.

    .venv/bin/python -m bench.scale --database-url postgresql://postgres@127.0.0.1:5432/DB
        [--tenants 10000] [--items 1000000] [--movements 5000000] [--orders 1000000]
        [--big-tenant bench] [--big-share 0.1]

`python -m bench --scale` calls `generate` on its bench database after seeding; this entry
point fills any migrated database (as its owner) the same way.

What is written, and why it is valid:

- `--tenants` tenants `scale-00000`, ... with one warehouse each, plus the big tenant
  (`--big-tenant`, created here unless it exists, with its location given or created)
  that receives `--big-share` of the items, movements and orders; the rest is spread
  evenly over the other tenants.
- Every item has one variant of its own SKU (registered in `sku`, as `create_item` does)
  and one stock level at its tenant's location. Each level's movements (`--movements` over
  all levels, 5 per level by default) start with `add 1000 received` and then cycle
  `reserve 2`, `release 1`, `subtract 1`, `add 3`: versions consecutive from 1, every
  `on_hand_after`/`reserved_after` following from the one before, and the level holding
  the last movement's state. `shelfkeeper verify` therefore finds no drift.
- Orders have three lines each (items of their own tenant, allocated at its location),
  numbered 1.. per tenant (after the big tenant's existing orders, if it has some) with
  the tenant's `order_counter` at the last number; four in
  five are `delivered` (history pending, processed, shipped, delivered), one in five
  `canceled` (pending, canceled); all unpaid. The other tenants get one sequenced
  `OrderPlaced` event per order; the big tenant gets none, so its sequences stay the
  relay's (it may be sequencing the seed's own events while this runs).
- The customer is sealed under the tenant's data key, which `privacy.service.sealer`
  creates wrapped by the service's master key (`--master-key`), and the email index is
  the blind index under that key: the service opens the generated orders and finds them
  by email.

Rows are generated in Python and written with `copy_records_to_table` (binary COPY) as
the owner role, with `session_replication_role = replica` so that foreign-key triggers do
not check each row (the generator builds the references itself), one connection per table
so that the server takes one batch in while the next is generated. VACUUM ANALYZE and a
CHECKPOINT run at the end, so the data set is measured settled, not while it is written
out.
The generated orders have no stock movements of their own: the ledger of each level is
consistent by itself, but orders and movements are not linked by `reference`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from shelfkeeper.config import Settings
from shelfkeeper.order.blind_index import BlindIndex
from shelfkeeper.order.service import CUSTOMER_FIELD
from shelfkeeper.privacy import service as privacy_service

ACTOR = "user:scale"
BATCH = 50_000
"""Rows buffered per table before they are copied."""
START_ON_HAND = 1000
CYCLE = (
    ("reserve", 2, "sale"),
    ("release", 1, "sale"),
    ("subtract", 1, "sale"),
    ("add", 3, "received"),
)
UNIT_PRICE = Decimal("9.99")
LINES_PER_ORDER = 3
TABLES = (
    "tenant",
    "location",
    "item",
    "variant",
    "sku",
    "stock_level",
    "stock_movement",
    "sales_order",
    "order_line",
    "order_allocation",
    "order_status_change",
    "order_counter",
    "event",
)
COLUMNS: dict[str, tuple[str, ...]] = {
    "tenant": ("id", "name"),
    "location": ("tenant_id", "id", "code", "name", "kind", "created_by", "updated_by"),
    "item": (
        "tenant_id", "id", "sku", "name", "created_by", "updated_by", "created_at", "updated_at",
    ),
    "variant": ("tenant_id", "id", "item_id", "sku", "position", "created_at", "updated_at"),
    "sku": ("tenant_id", "sku", "item_id", "variant_id"),
    "stock_level": (
        "tenant_id", "variant_id", "location_id", "on_hand", "reserved", "version",
        "created_at", "updated_at",
    ),
    "stock_movement": (
        "tenant_id", "id", "variant_id", "location_id", "level_version", "operation",
        "quantity", "on_hand_after", "reserved_after", "reason", "actor", "created_at",
    ),
    "sales_order": (
        "tenant_id", "id", "number", "status", "payment_status", "currency", "total",
        "customer", "customer_email_index", "version", "created_by", "updated_by",
        "created_at", "updated_at",
    ),
    "order_line": (
        "tenant_id", "id", "order_id", "position", "item_id", "variant_id", "sku", "quantity",
        "unit_price",
    ),
    "order_allocation": ("tenant_id", "line_id", "location_id", "position", "quantity"),
    "order_status_change": ("tenant_id", "order_id", "position", "status", "actor", "at"),
    "order_counter": ("tenant_id", "last"),
    "event": ("tenant_id", "id", "type", "subject", "data", "time", "sequence"),
}  # fmt: skip
DELIVERED = ("pending", "processed", "shipped", "delivered")
CANCELED = ("pending", "canceled")


@dataclass(frozen=True)
class Scale:
    tenants: int = 10_000
    items: int = 1_000_000
    movements: int = 5_000_000
    orders: int = 1_000_000
    big_share: float = 0.1
    """The share of items, movements and orders that go to the big tenant."""


@dataclass
class Plan:
    """How many of each one tenant gets."""

    tenant_id: str
    items: int
    movements: int
    orders: int
    location_id: UUID | None = None
    create: bool = True
    events: bool = True
    numbers_after: int = 0
    """The tenant's order counter before: generated orders are numbered after it (and the
    counter is then updated rather than written)."""


def split(total: int, parts: int) -> list[int]:
    """`total` over `parts` as evenly as whole numbers allow (the first ones take one more)."""
    if parts <= 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


def plans(
    scale: Scale, *, big_tenant: str, big_location: UUID | None, big_exists: bool
) -> list[Plan]:
    """The big tenant first, then `scale.tenants` others sharing the rest evenly."""
    big = Plan(
        tenant_id=big_tenant,
        items=round(scale.items * scale.big_share),
        movements=round(scale.movements * scale.big_share),
        orders=round(scale.orders * scale.big_share),
        location_id=big_location,
        create=not big_exists,
        events=False,
    )
    if big.items == 0:
        big.movements = big.orders = 0
    items = split(scale.items - big.items, scale.tenants)
    movements = split(scale.movements - big.movements, scale.tenants)
    orders = split(scale.orders - big.orders, scale.tenants)
    others = [
        Plan(tenant_id=f"scale-{index:05d}", items=items[index], movements=movements[index],
             orders=orders[index] if items[index] else 0)
        for index in range(scale.tenants)
    ]  # fmt: skip
    return [big, *others]


@dataclass
class Ids:
    """Distinct UUIDs, cheaply: a random run prefix and a counter (ordered, so the indexes
    on them are filled left to right)."""

    prefix: int = field(default_factory=lambda: secrets.randbits(64) << 64)
    count: int = 0

    def next(self) -> UUID:
        self.count += 1
        return UUID(int=self.prefix | self.count)


Row = tuple[Any, ...]


def tenant_rows(
    plan: Plan,
    ids: Ids,
    index: BlindIndex,
    now: datetime,
    sealer: privacy_service.Sealer | None,
) -> Iterator[tuple[str, Row]]:
    """Every row of one tenant's share, as (table, row)."""
    tenant_id = plan.tenant_id
    if plan.create:
        yield "tenant", (tenant_id, f"Tenant {tenant_id}")
    location_id = plan.location_id
    if location_id is None:
        location_id = ids.next()
        yield "location", (tenant_id, location_id, "SCALE-WH", "Scale warehouse", "warehouse",
                           ACTOR, ACTOR)  # fmt: skip
    if plan.items == 0:
        return
    start = now - timedelta(days=365)
    item_step = timedelta(days=300) / plan.items
    per_level = split(plan.movements, plan.items)
    variants: list[tuple[UUID, UUID, str]] = []
    for position in range(plan.items):
        item_id, variant_id = ids.next(), ids.next()
        sku = f"SC-{position:07d}"
        created = start + item_step * position
        variants.append((item_id, variant_id, sku))
        yield "item", (tenant_id, item_id, sku, f"Scale item {position}", ACTOR, ACTOR, created,
                       created)  # fmt: skip
        yield "variant", (tenant_id, variant_id, item_id, sku, 1, created, created)
        yield "sku", (tenant_id, sku, item_id, variant_id)
        on_hand = reserved = version = 0
        moment = created
        for step in range(per_level[position]):
            if step == 0:
                operation, quantity, reason = "add", START_ON_HAND, "received"
            else:
                operation, quantity, reason = CYCLE[(step - 1) % len(CYCLE)]
            if operation == "add":
                on_hand += quantity
            elif operation == "subtract":
                on_hand -= quantity
            elif operation == "reserve":
                reserved += quantity
            else:
                reserved -= quantity
            version += 1
            moment += timedelta(minutes=7)
            yield "stock_movement", (tenant_id, ids.next(), variant_id, location_id, version,
                                     operation, quantity, on_hand, reserved, reason, ACTOR,
                                     moment)  # fmt: skip
        yield "stock_level", (tenant_id, variant_id, location_id, on_hand, reserved, version,
                              created, moment)  # fmt: skip
    order_step = timedelta(days=300) / max(plan.orders, 1)
    order_start = start + timedelta(days=60)
    for count in range(1, plan.orders + 1):
        number = plan.numbers_after + count
        order_id = ids.next()
        created = order_start + order_step * count
        email = f"customer{count % 5000}@example.com"
        statuses = CANCELED if count % 5 == 0 else DELIVERED
        total = Decimal(0)
        for position in range(1, LINES_PER_ORDER + 1):
            item_id, variant_id, sku = variants[(count * 7 + position * 13) % len(variants)]
            quantity = 1 + (count + position) % 3
            total += UNIT_PRICE * quantity
            line_id = ids.next()
            yield "order_line", (tenant_id, line_id, order_id, position, item_id, variant_id, sku,
                                 quantity, UNIT_PRICE)  # fmt: skip
            yield "order_allocation", (tenant_id, line_id, location_id, 1, quantity)
        updated = created + timedelta(hours=len(statuses))
        assert sealer is not None
        customer = sealer.seal_json(
            CUSTOMER_FIELD, {"email": email, "name": f"Customer {count % 5000}"}
        )
        yield "sales_order", (tenant_id, order_id, number, statuses[-1], "unpaid", "USD", total,
                              customer, index.email(tenant_id, email), len(statuses), ACTOR,
                              ACTOR, created, updated)  # fmt: skip
        for position, status in enumerate(statuses, start=1):
            yield "order_status_change", (tenant_id, order_id, position, status, ACTOR,
                                          created + timedelta(hours=position - 1))  # fmt: skip
        if plan.events:
            data = json.dumps({"id": str(order_id), "number": number, "status": "pending"})
            yield "event", (tenant_id, ids.next(), "OrderPlaced", f"orders/{order_id}", data,
                            created, number)  # fmt: skip
    if plan.orders and not plan.numbers_after:
        yield "order_counter", (tenant_id, plan.orders)


async def generate(
    dsn: str,
    scale: Scale,
    *,
    big_tenant: str,
    big_location: UUID | None = None,
    master_key: bytes,
    progress: bool = False,
) -> dict[str, Any]:
    """Write `scale`'s rows into the migrated database at `dsn` (as its owner). Returns the
    rows written per table and the seconds taken (copying, then VACUUM ANALYZE and a
    CHECKPOINT: `settle_seconds`)."""
    started = time.perf_counter()
    privacy_service.use_master_key(Settings(master_key=master_key.decode()))
    connection = await asyncpg.connect(dsn)
    # One connection per table, so that PostgreSQL takes one batch in while the next is
    # being generated (two cores: Python on one, the server on the other).
    copiers: dict[str, asyncpg.Connection[asyncpg.Record]] = {}
    copying: dict[str, asyncio.Task[None]] = {}
    try:
        await connection.execute("SET session_replication_role = replica")
        for table in TABLES:
            copiers[table] = await asyncpg.connect(dsn)
            await copiers[table].execute("SET session_replication_role = replica")
        big_exists = bool(
            await connection.fetchval("SELECT count(*) FROM tenant WHERE id = $1", big_tenant)
        )
        numbered: int = await connection.fetchval(
            "SELECT coalesce(max(last), 0) FROM order_counter WHERE tenant_id = $1", big_tenant
        )
        ids = Ids()
        index = BlindIndex(master_key)
        now = datetime.now(UTC)
        buffers: dict[str, list[Row]] = {table: [] for table in TABLES}
        written: dict[str, int] = dict.fromkeys(TABLES, 0)

        async def copy(table: str, rows: list[Row]) -> None:
            await copiers[table].copy_records_to_table(table, records=rows, columns=COLUMNS[table])

        async def flush(table: str) -> None:
            rows = buffers[table]
            if rows:
                previous = copying.pop(table, None)
                if previous is not None:
                    await previous
                copying[table] = asyncio.create_task(copy(table, rows))
                written[table] += len(rows)
                buffers[table] = []

        every = plans(
            scale, big_tenant=big_tenant, big_location=big_location, big_exists=big_exists
        )
        every[0].numbers_after = numbered
        for number, plan in enumerate(every):
            # The tenant's first data key (its row written now, the tenant's row later: no
            # foreign key is checked in this session).
            sealer = (
                await privacy_service.sealer(connection, tenant_id=plan.tenant_id)
                if plan.orders
                else None
            )
            for table, row in tenant_rows(plan, ids, index, now, sealer):
                buffer = buffers[table]
                buffer.append(row)
                if len(buffer) >= BATCH:
                    await flush(table)
            await asyncio.sleep(0)  # let the copies send what they have encoded
            if progress and number % 1000 == 0:
                sys.stderr.write(
                    f"scale: {number}/{len(every)} tenants, "
                    f"{sum(written.values())} rows, {time.perf_counter() - started:.0f} s\n"
                )
        for table in TABLES:
            await flush(table)
        await asyncio.gather(*copying.values())
        copying.clear()
        if numbered and every[0].orders:
            await connection.execute(
                "UPDATE order_counter SET last = $2 WHERE tenant_id = $1",
                big_tenant,
                numbered + every[0].orders,
            )
        copied = time.perf_counter() - started
        await connection.execute("RESET session_replication_role")
        # Settle, as a loaded database would be before it serves: hint bits and the
        # visibility map set and statistics gathered (VACUUM ANALYZE), and the dirty pages
        # written out (CHECKPOINT). Without it the first minutes of load pay for the bulk
        # load (a checkpoint writing gigabytes slows every commit's WAL flush).
        await connection.execute("VACUUM (ANALYZE)")
        await connection.execute("CHECKPOINT")
    finally:
        for task in copying.values():
            task.cancel()
        for copier in copiers.values():
            await copier.close()
        await connection.close()
    return {
        "rows": written,
        "copy_seconds": round(copied, 1),
        "settle_seconds": round(time.perf_counter() - started - copied, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "tenants": len(every),
        "big_tenant": {
            "tenant_id": big_tenant,
            "items": every[0].items,
            "movements": every[0].movements,
            "orders": every[0].orders,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--database-url", required=True, help="a migrated database, as its owner")
    defaults = Scale()
    parser.add_argument("--tenants", type=int, default=defaults.tenants)
    parser.add_argument("--items", type=int, default=defaults.items)
    parser.add_argument("--movements", type=int, default=defaults.movements)
    parser.add_argument("--orders", type=int, default=defaults.orders)
    parser.add_argument("--big-tenant", default="bench")
    parser.add_argument("--big-share", type=float, default=defaults.big_share)
    parser.add_argument(
        "--master-key",
        default=os.environ.get("SHELFKEEPER_MASTER_KEY", ""),
        help="the service's master key (default: SHELFKEEPER_MASTER_KEY)",
    )
    parsed = parser.parse_args()
    if not parsed.master_key:
        parser.error("give --master-key or set SHELFKEEPER_MASTER_KEY")
    scale = Scale(parsed.tenants, parsed.items, parsed.movements, parsed.orders, parsed.big_share)
    result = asyncio.run(
        generate(
            parsed.database_url,
            scale,
            big_tenant=parsed.big_tenant,
            master_key=parsed.master_key.encode(),
            progress=True,
        )
    )
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
