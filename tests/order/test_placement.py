"""Placing an order in few statements (`order.service.create`): every level reserved by one
all-or-nothing statement (`inventory.repository.reserve_levels`), the order written by one,
the request's audit entry before the number, and the number with `OrderPlaced` last.

Concurrency claims are checked with real concurrent requests: numbers stay distinct and
gapless and their events carry them, orders racing for the last units in opposite line
orders never oversell nor deadlock, and the one statement writes exactly what reserving
level by level writes."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any
from uuid import UUID

import httpx

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.inventory import repository as inventory_repository
from tests.conftest import TenantWorld
from tests.inventory.factories import levels
from tests.inventory.reservation_factories import place, stocked_item
from tests.order.factories import (
    PROBLEMS,
    assert_ledger_sound,
    event_data,
    order_body,
    order_rows,
    order_url,
    orders_url,
)


async def create_order_entries(owner: Connection, *, tenant: str) -> list[dict[str, Any]]:
    rows = await owner.fetch(
        "SELECT actor, role, action, entity_type, entity_id, before, after, request_id, "
        "client_address FROM audit_entry WHERE tenant_id = $1 AND action = 'create_order'",
        tenant,
    )
    return [dict(row) for row in rows]


async def test_concurrent_orders_get_distinct_gapless_numbers_their_events_and_entries_carry(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    skus = [f"P{index}" for index in range(6)]
    for sku in skus:
        await stocked_item(client, world, tenant=world.a, sku=sku, on_hand={north: 100})
    count = 24
    bodies = [
        order_body(
            lines=[
                {"sku": skus[(start + offset) % len(skus)], "quantity": 1, "unit_price": "1.00"}
                for offset in range(3)
            ]
        )
        for start in range(count)
    ]

    responses = await asyncio.gather(
        *(
            client.post(orders_url(world.a), json=body, headers=world.headers(world.a, "clerk"))
            for body in bodies
        )
    )

    assert [response.status_code for response in responses] == [201] * count
    orders = [response.json() for response in responses]
    assert sorted(order["number"] for order in orders) == list(range(1, count + 1))
    assert (
        await owner_connection.fetchval(
            "SELECT last FROM order_counter WHERE tenant_id = $1", world.a
        )
        == count
    )
    # The answer is what the order reads as (it is built from what was written, not read).
    for order in orders:
        read = await client.get(order_url(world.a, order["id"]), headers=world.headers(world.a))
        assert read.json() == order
    # Each OrderPlaced carries its order as read, number included, without personal data.
    placed_events = {
        data["id"]: data for data in await event_data(owner_connection, tenant=world.a)
    }
    assert placed_events == {
        order["id"]: {
            key: value
            for key, value in order.items()
            if key not in ("customer", "shipping_address")
        }
        for order in orders
    }
    # One audit entry per order, as the request's auditor writes for any request.
    entries = await create_order_entries(owner_connection, tenant=world.a)
    assert sorted(entry["entity_id"] for entry in entries) == sorted(
        order["id"] for order in orders
    )
    assert {
        (entry["actor"], entry["role"], entry["entity_type"], entry["before"], entry["after"])
        for entry in entries
    } == {("user:tester", "clerk", "order", None, None)}
    assert len({entry["request_id"] for entry in entries}) == count
    assert None not in {entry["request_id"] for entry in entries}
    assert {entry["client_address"] for entry in entries} == {"127.0.0.1"}


async def test_one_short_level_reserves_nothing_at_the_others_and_takes_no_number(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    _, plenty = await stocked_item(client, world, tenant=world.a, sku="PLENTY", on_hand={north: 9})
    _, scarce = await stocked_item(client, world, tenant=world.a, sku="SCARCE", on_hand={north: 1})
    await stocked_item(client, world, tenant=world.a, sku="MORE", on_hand={north: 9})
    before = await levels(owner_connection, tenant=world.a)
    events_before = await owner_connection.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1", world.a
    )

    refused = await client.post(
        orders_url(world.a),
        json=order_body(
            lines=[
                {"sku": "PLENTY", "quantity": 2, "unit_price": "1.00"},
                {"sku": "SCARCE", "quantity": 2, "unit_price": "1.00"},
                {"sku": "MORE", "quantity": 3, "unit_price": "1.00"},
            ]
        ),
        headers=world.headers(world.a, "clerk"),
    )

    assert refused.status_code == 409
    problem = refused.json()
    assert problem["type"] == PROBLEMS + "insufficient-stock"
    assert problem["lines"] == [
        {"index": 1, "variant_id": scarce, "requested": 2, "available": 1, "sku": "SCARCE"}
    ]
    assert await levels(owner_connection, tenant=world.a) == before
    assert (
        await owner_connection.fetchval("SELECT count(*) FROM event WHERE tenant_id = $1", world.a)
        == events_before
    )
    assert (
        await owner_connection.fetchval(
            "SELECT count(*) FROM stock_movement WHERE tenant_id = $1 AND reference LIKE 'order:%'",
            world.a,
        )
        == 0
    )
    assert await create_order_entries(owner_connection, tenant=world.a) == []
    assert all(rows == [] for rows in (await order_rows(owner_connection, tenant=world.a)).values())

    placed = await client.post(
        orders_url(world.a),
        json=order_body(
            lines=[
                {"sku": "PLENTY", "quantity": 2, "unit_price": "1.00"},
                {"sku": "SCARCE", "quantity": 1, "unit_price": "1.00"},
            ]
        ),
        headers=world.headers(world.a, "clerk"),
    )
    assert placed.status_code == 201, placed.text
    assert placed.json()["number"] == 1
    after = await levels(owner_connection, tenant=world.a)
    assert after[(plenty, north)] == (9, 2, before[(plenty, north)][2] + 1)
    assert after[(scarce, north)] == (1, 1, before[(scarce, north)][2] + 1)
    await assert_ledger_sound(database, world.a)


async def test_orders_racing_for_the_last_units_in_opposite_line_orders_never_oversell(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S", priority=1)
    _, x = await stocked_item(client, world, tenant=world.a, sku="X", on_hand={north: 3, south: 2})
    _, y = await stocked_item(client, world, tenant=world.a, sku="Y", on_hand={south: 3, north: 2})
    forward = [{"sku": "X", "quantity": 1, "unit_price": "1.00"}]
    forward.append({"sku": "Y", "quantity": 1, "unit_price": "1.00"})
    backward = list(reversed(forward))
    count = 20

    responses = await asyncio.gather(
        *(
            client.post(
                orders_url(world.a),
                json=order_body(lines=forward if index % 2 else backward),
                headers=world.headers(world.a, "clerk"),
            )
            for index in range(count)
        )
    )

    statuses = Counter(response.status_code for response in responses)
    # 5 units of each, every order wants one of each: exactly 5 orders fit, no error
    assert statuses == Counter({201: 5, 409: 15})
    accepted = [response.json() for response in responses if response.status_code == 201]
    assert sorted(order["number"] for order in accepted) == [1, 2, 3, 4, 5]
    reserved = {
        level: state[1] for level, state in (await levels(owner_connection, tenant=world.a)).items()
    }
    assert reserved == {(x, north): 3, (x, south): 2, (y, north): 2, (y, south): 3}
    held: Counter[tuple[str, str]] = Counter()
    for order in accepted:
        for line in order["lines"]:
            for piece in line["allocations"]:
                held[(line["variant_id"], piece["location_id"])] += piece["quantity"]
    assert dict(held) == reserved
    await assert_ledger_sound(database, world.a)


async def test_one_statement_writes_what_reserving_level_by_level_writes(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    # Two tenants set up alike: one reserves with the one statement, the other level by level
    # with `apply`; levels, movements and events must come out the same.
    async def setup(tenant: str) -> list[tuple[UUID, UUID, int]]:
        north = await place(client, world, tenant=tenant, code="N")
        south = await place(client, world, tenant=tenant, code="S")
        _, low = await stocked_item(
            client, world, tenant=tenant, sku="LOW", on_hand={north: 6}, low_stock_threshold=5
        )
        _, high = await stocked_item(
            client, world, tenant=tenant, sku="HIGH", on_hand={north: 50, south: 50}
        )
        return [
            (UUID(low), UUID(north), 2),  # crosses its threshold: 6 -> 4 available
            (UUID(high), UUID(north), 3),
            (UUID(high), UUID(south), 1),
        ]

    batch, single = await setup(world.a), await setup(world.b)
    marks = {
        tenant: await owner_connection.fetchval(
            "SELECT count(*) FROM event WHERE tenant_id = $1", tenant
        )
        for tenant in (world.a, world.b)
    }

    async with database.tenant_transaction(world.a) as db:
        reserved = await inventory_repository.reserve_levels(
            db,
            tenant_id=world.a,
            levels=sorted(batch),
            reason="other",
            note=None,
            reference="order:test",
            actor="user:tester",
        )
    async with database.tenant_transaction(world.b) as db:
        for variant_id, location_id, quantity in sorted(single):
            row = await inventory_repository.apply(
                db,
                tenant_id=world.b,
                change=inventory_repository.Change(
                    variant_id=variant_id,
                    location_id=location_id,
                    operation="reserve",
                    quantity=quantity,
                    reason="other",
                    note=None,
                    reference="order:test",
                    expected_version=None,
                    allow_backorder=False,
                ),
                actor="user:tester",
            )
            assert row is not None

    assert reserved is True

    async def written(tenant: str, levels_of: list[tuple[UUID, UUID, int]]) -> dict[str, Any]:
        names = {}
        for position, (variant_id, location_id, _) in enumerate(levels_of):
            names[str(variant_id)] = f"variant{position // 2}"
            names[str(location_id)] = "north" if position < 2 else "south"
        rows = await owner_connection.fetch(
            "SELECT variant_id::text, location_id::text, on_hand, reserved, version, low_stock, "
            "low_stock_version FROM stock_level WHERE tenant_id = $1",
            tenant,
        )
        level_state = sorted(
            (names[row["variant_id"]], names[row["location_id"]], *tuple(row)[2:]) for row in rows
        )
        movements = sorted(
            (
                names[row["variant_id"]],
                names[row["location_id"]],
                *tuple(row)[2:],
            )
            for row in await owner_connection.fetch(
                "SELECT variant_id::text, location_id::text, level_version, operation, "
                "quantity, on_hand_after, reserved_after, reason, reference, actor "
                "FROM stock_movement WHERE tenant_id = $1 AND reference = 'order:test'",
                tenant,
            )
        )
        events = [
            (
                row["type"],
                names[row["data"]["variant_id"]],
                names[row["data"]["location_id"]],
                {
                    key: value
                    for key, value in row["data"].items()
                    if key not in ("item_id", "variant_id", "location_id", "movement_id")
                },
            )
            for row in await owner_connection.fetch(
                "SELECT type, data FROM event WHERE tenant_id = $1 ORDER BY time, id OFFSET $2",
                tenant,
                marks[tenant],
            )
        ]
        return {"levels": level_state, "movements": movements, "events": events}

    # `names` maps ids to the same labels in both tenants: LOW is variant0 at north, HIGH
    # variant1 at north and south (the positions of `setup`'s list).
    batch_written, single_written = await written(world.a, batch), await written(world.b, single)
    assert batch_written["levels"] == single_written["levels"]
    assert batch_written["movements"] == single_written["movements"]
    # the same events; their order across levels follows the ids, which differ per tenant
    assert sorted(batch_written["events"], key=repr) == sorted(single_written["events"], key=repr)
    kinds = [(event[0], event[1], event[2]) for event in batch_written["events"]]
    assert kinds.count(("InventoryLowStock", "variant0", "north")) == 1
    assert kinds.index(("InventoryUpdated", "variant0", "north")) + 1 == kinds.index(
        ("InventoryLowStock", "variant0", "north")
    )
    assert len(batch_written["movements"]) == 3


async def test_an_order_waiting_on_a_level_decides_on_what_the_level_holds_once_locked(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    # The order reads 5 available and plans on them, then waits for the level's lock while
    # another transaction reserves all 5; once that commits, the order must see 0 (the
    # level's latest version) and refuse, not reserve on the stale read.
    north = await place(client, world, tenant=world.a, code="N")
    _, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    _, mug = await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 5})
    take_all = inventory_repository.Change(
        variant_id=UUID(towel),
        location_id=UUID(north),
        operation="reserve",
        quantity=5,
        reason="other",
        note=None,
        reference=None,
        expected_version=None,
        allow_backorder=False,
    )

    async with database.tenant_transaction(world.a) as db:
        assert await inventory_repository.apply(
            db, tenant_id=world.a, change=take_all, actor="user:other"
        )
        order = asyncio.create_task(
            client.post(
                orders_url(world.a),
                json=order_body(
                    lines=[
                        {"sku": "MUG", "quantity": 1, "unit_price": "1.00"},
                        {"sku": "TOWEL", "quantity": 1, "unit_price": "1.00"},
                    ]
                ),
                headers=world.headers(world.a, "clerk"),
            )
        )
        # the order gets as far as the level's lock and waits there
        for _ in range(200):
            waiting = await owner_connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE '%shelfkeeper_lock_levels_to_reserve(%'"
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting == 1
        assert not order.done()

    response = await order
    assert response.status_code == 409, response.text
    assert response.json()["lines"] == [
        {"index": 1, "variant_id": towel, "requested": 1, "available": 0, "sku": "TOWEL"}
    ]
    state = await levels(owner_connection, tenant=world.a)
    assert (state[(towel, north)][:2], state[(mug, north)][:2]) == ((5, 5), (5, 0))
    await assert_ledger_sound(database, world.a)


async def test_a_refused_statement_changes_nothing_and_leaves_no_level_locked(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    _, plenty = await stocked_item(client, world, tenant=world.a, sku="PLENTY", on_hand={north: 9})
    _, scarce = await stocked_item(client, world, tenant=world.a, sku="SCARCE", on_hand={north: 1})
    before = await levels(owner_connection, tenant=world.a)
    wanted = sorted([(UUID(plenty), UUID(north), 2), (UUID(scarce), UUID(north), 2)])

    async with database.tenant_transaction(world.a) as db:
        reserved = await inventory_repository.reserve_levels(
            db,
            tenant_id=world.a,
            levels=wanted,
            reason="other",
            note=None,
            reference="order:refused",
            actor="user:tester",
        )
        assert reserved is False
        # still inside the refusing transaction: another one may lock both levels at once
        locked = await owner_connection.fetch(
            "SELECT variant_id FROM stock_level WHERE tenant_id = $1 FOR NO KEY UPDATE NOWAIT",
            world.a,
        )
        assert len(locked) == 2
        # and this transaction goes on (nothing was aborted): it may reserve what fits
        assert await inventory_repository.reserve_levels(
            db,
            tenant_id=world.a,
            levels=[(UUID(plenty), UUID(north), 2)],
            reason="other",
            note=None,
            reference="order:refused",
            actor="user:tester",
        )

    after = await levels(owner_connection, tenant=world.a)
    assert after[(scarce, north)] == before[(scarce, north)]
    assert after[(plenty, north)] == (9, 2, before[(plenty, north)][2] + 1)
    assert (
        await owner_connection.fetchval(
            "SELECT count(*) FROM stock_movement WHERE tenant_id = $1 AND reference = $2",
            world.a,
            "order:refused",
        )
        == 1
    )
    await assert_ledger_sound(database, world.a)


async def test_a_replayed_order_writes_no_second_audit_entry_event_or_number(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    headers = world.headers(world.a, "clerk") | {"Idempotency-Key": "checkout-c1"}
    body = order_body(lines=[{"sku": "TOWEL", "quantity": 1, "unit_price": "1.00"}])

    first = await client.post(orders_url(world.a), json=body, headers=headers)
    again = await client.post(orders_url(world.a), json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert first.json()["number"] == 1
    entries = await create_order_entries(owner_connection, tenant=world.a)
    assert [entry["entity_id"] for entry in entries] == [first.json()["id"]]
    assert [data["id"] for data in await event_data(owner_connection, tenant=world.a)] == [
        first.json()["id"]
    ]
    assert (
        await owner_connection.fetchval(
            "SELECT last FROM order_counter WHERE tenant_id = $1", world.a
        )
        == 1
    )
