"""The flash-sale fast path: coalesced reservations decide exactly as one statement per
request would, under real concurrency, with one movement and one event per request."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from shelfkeeper.db.database import Database
from shelfkeeper.inventory import repository
from shelfkeeper.inventory.coalescer import Outcome, ReservationCoalescer
from shelfkeeper.inventory.ledger import find_drift
from shelfkeeper.inventory.repository import Reservation
from tests.conftest import TenantWorld
from tests.inventory.factories import create_item, new_location, stock

Connection = asyncpg.Connection


async def stocked_level(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    on_hand: int,
    **item_fields: Any,
) -> tuple[UUID, UUID]:
    location = await new_location(client, world, tenant=tenant)
    item = await create_item(client, world, tenant=tenant, **item_fields)
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="add",
        quantity=on_hand,
        location_id=location,
    )
    return UUID(item["variants"][0]["id"]), UUID(location)


def reservation(quantity: int = 1, reference: str | None = None) -> Reservation:
    return Reservation(
        quantity=quantity, reason="sale", note=None, reference=reference, actor="user:flash"
    )


async def level_row(owner: Connection, *, tenant: str, variant: UUID) -> tuple[int, int, int]:
    row = await owner.fetchrow(
        "SELECT on_hand, reserved, version FROM stock_level WHERE tenant_id = $1 "
        "AND variant_id = $2",
        tenant,
        variant,
    )
    assert row is not None
    return row["on_hand"], row["reserved"], row["version"]


async def assert_ledger_sound(database: Database, tenant: str) -> None:
    async with database.tenant_transaction(tenant) as db:
        assert await find_drift(db, tenant_id=tenant) == []


async def test_concurrent_requests_never_oversell_and_are_coalesced(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    variant, location = await stocked_level(client, world, tenant=world.a, on_hand=50)
    coalescer = ReservationCoalescer(database)

    outcomes = await asyncio.gather(
        *(
            coalescer.reserve(
                tenant_id=world.a,
                variant_id=variant,
                location_id=location,
                request=reservation(reference=f"r{number}"),
            )
            for number in range(200)
        )
    )

    accepted = [outcome for outcome in outcomes if outcome.accepted]
    refused = [outcome for outcome in outcomes if not outcome.accepted]
    assert len(accepted) == 50
    assert {(outcome.available, outcome.plain) for outcome in refused} == {(0, False)}
    assert await level_row(owner_connection, tenant=world.a, variant=variant) == (50, 50, 51)
    # every accepted request has its own movement, with the level as it stood after it
    after = sorted(
        (outcome.row["reserved_after"], outcome.row["version"])
        for outcome in accepted
        if outcome.row
    )
    assert after == [(number, number + 1) for number in range(1, 51)]
    assert 1 <= coalescer.rounds < 200
    movements = await owner_connection.fetchval(
        "SELECT count(*) FROM stock_movement WHERE tenant_id = $1 AND operation = 'reserve'",
        world.a,
    )
    updated = await owner_connection.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1 AND type = 'InventoryUpdated' "
        "AND data->>'operation' = 'reserve'",
        world.a,
    )
    assert (movements, updated) == (50, 50)
    await assert_ledger_sound(database, world.a)


async def test_a_batch_decides_in_arrival_order_like_one_statement_each(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    variant, location = await stocked_level(client, world, tenant=world.a, on_hand=6)

    async with database.tenant_transaction(world.a) as db:
        assert await repository.lock_level(
            db, tenant_id=world.a, variant_id=variant, location_id=location
        )
        rows = await repository.reserve_batch(
            db,
            tenant_id=world.a,
            variant_id=variant,
            location_id=location,
            requests=[reservation(quantity) for quantity in (3, 5, 1, 2, 1)],
        )

    # 3 fits (6 left), 5 does not (3 left), 1 and 2 fit, the last 1 finds nothing left
    assert [(row["accepted"], row["available_before"]) for row in rows] == [
        (True, 6),
        (False, 3),
        (True, 3),
        (True, 2),
        (False, 0),
    ]
    assert [row["reserved_after"] for row in rows if row["accepted"]] == [3, 4, 6]
    assert await level_row(owner_connection, tenant=world.a, variant=variant) == (6, 6, 4)
    await assert_ledger_sound(database, world.a)


async def test_a_threshold_crossed_inside_a_batch_alerts_once_at_the_crossing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    variant, location = await stocked_level(
        client, world, tenant=world.a, on_hand=15, low_stock_threshold=10
    )

    async with database.tenant_transaction(world.a) as db:
        await repository.lock_level(db, tenant_id=world.a, variant_id=variant, location_id=location)
        await repository.reserve_batch(
            db,
            tenant_id=world.a,
            variant_id=variant,
            location_id=location,
            requests=[reservation() for _ in range(8)],
        )

    alerts = await owner_connection.fetch(
        "SELECT data FROM event WHERE tenant_id = $1 AND type = 'InventoryLowStock'", world.a
    )
    # available 15 -> 7; it reaches the threshold (10) at the fifth request, version 1 + 5
    assert [(row["data"]["available"], row["data"]["version"]) for row in alerts] == [(10, 6)]
    flags = await owner_connection.fetchrow(
        "SELECT low_stock, low_stock_version FROM stock_level WHERE tenant_id = $1 "
        "AND variant_id = $2",
        world.a,
        variant,
    )
    assert tuple(flags) == (True, 6)


async def test_a_missing_level_is_left_to_the_plain_path(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    location = UUID(await new_location(client, world, tenant=world.a))
    item = await create_item(client, world, tenant=world.a)
    coalescer = ReservationCoalescer(database)

    outcome = await coalescer.reserve(
        tenant_id=world.a,
        variant_id=UUID(item["variants"][0]["id"]),
        location_id=location,
        request=reservation(),
    )

    assert outcome == Outcome(accepted=False, plain=True)


async def test_a_refusal_while_holds_are_due_is_left_to_the_plain_path(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    variant, location = await stocked_level(client, world, tenant=world.a, on_hand=2)
    held = await client.post(
        f"/api/v1/{world.a}/reservations",
        json={"lines": [{"sku": "TOWEL", "quantity": 2}], "ttl_seconds": 60},
        headers=world.headers(world.a, "clerk"),
    )
    assert held.status_code == 201, held.text
    await owner_connection.execute(
        "UPDATE reservation SET expires_at = now() - interval '1 second' WHERE tenant_id = $1",
        world.a,
    )
    coalescer = ReservationCoalescer(database)

    outcome = await coalescer.reserve(
        tenant_id=world.a, variant_id=variant, location_id=location, request=reservation()
    )

    assert outcome == Outcome(accepted=False, plain=True)
    assert await level_row(owner_connection, tenant=world.a, variant=variant) == (2, 2, 2)


async def test_tenants_are_kept_apart(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    variant, location = await stocked_level(client, world, tenant=world.a, on_hand=5)
    coalescer = ReservationCoalescer(database)

    # tenant b naming tenant a's level: row-level security shows b no such level
    outcome = await coalescer.reserve(
        tenant_id=world.b, variant_id=variant, location_id=location, request=reservation()
    )

    assert outcome == Outcome(accepted=False, plain=True)
    assert await level_row(owner_connection, tenant=world.a, variant=variant) == (5, 0, 1)
