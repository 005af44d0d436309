"""Every stock change records `InventoryUpdated` in its own statement; refusals record none."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.inventory import reservation_service
from shelfkeeper.inventory import service as inventory_service
from shelfkeeper.inventory.ledger import find_drift
from tests.conftest import TenantWorld
from tests.inventory.event_factories import LOW_STOCK, UPDATED, events_of
from tests.inventory.factories import adjust, adjustments_url, stock, transfers_url
from tests.inventory.reservation_factories import (
    clerk,
    expire,
    held,
    hold,
    place,
    reservation_url,
    stocked_item,
)


async def movements_by_id(owner: Connection, *, tenant: str) -> dict[str, dict[str, Any]]:
    rows = await owner.fetch(
        "SELECT id, variant_id, location_id, level_version, operation, quantity, "
        "on_hand_after, reserved_after, reason, reference FROM stock_movement "
        "WHERE tenant_id = $1",
        tenant,
    )
    return {str(row["id"]): dict(row) for row in rows}


async def assert_one_update_event_per_movement(owner: Connection, *, tenant: str) -> int:
    """Every movement has exactly one `InventoryUpdated` event that describes it."""
    movements = await movements_by_id(owner, tenant=tenant)
    updates = await events_of(owner, tenant=tenant, type=UPDATED)
    assert Counter(event["data"]["movement_id"] for event in updates) == Counter(
        dict.fromkeys(movements, 1)
    )
    items = dict(await owner.fetch("SELECT id, item_id FROM variant WHERE tenant_id = $1", tenant))
    for event in updates:
        movement = movements[event["data"]["movement_id"]]
        item_id = str(items[movement["variant_id"]])
        assert event["subject"] == f"inventory/{item_id}"
        assert event["data"] | {"sku": None} == {
            "item_id": item_id,
            "variant_id": str(movement["variant_id"]),
            "sku": None,
            "location_id": str(movement["location_id"]),
            "on_hand": movement["on_hand_after"],
            "reserved": movement["reserved_after"],
            "available": movement["on_hand_after"] - movement["reserved_after"],
            "version": movement["level_version"],
            "movement_id": event["data"]["movement_id"],
            "operation": movement["operation"],
            "quantity": movement["quantity"],
            "reason": movement["reason"],
            "reference": movement["reference"],
        }
    return len(updates)


async def test_a_stock_change_records_its_update_event(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    item_id, variant_id = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 10}
    )

    result = await stock(
        client,
        world,
        tenant=world.a,
        item_id=item_id,
        operation="reserve",
        quantity=4,
        location_id=north,
        reference="po:7",
    )

    updates = await events_of(owner_connection, tenant=world.a, type=UPDATED)
    assert updates[-1] == {
        "type": UPDATED,
        "subject": f"inventory/{item_id}",
        "data": {
            "item_id": item_id,
            "variant_id": variant_id,
            "sku": "TOWEL",
            "location_id": north,
            "on_hand": 10,
            "reserved": 4,
            "available": 6,
            "version": 2,
            "movement_id": result["movement"]["id"],
            "operation": "reserve",
            "quantity": 4,
            "reason": "other",
            "reference": "po:7",
        },
    }
    assert len(updates) == 2
    assert await events_of(owner_connection, tenant=world.b) == []


async def test_every_path_that_changes_stock_records_one_update_per_movement(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    towel_item, _ = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 20}
    )
    mug_item, _ = await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={south: 5})
    changes = 2
    for operation, quantity in [("subtract", 1), ("reserve", 2), ("release", 1), ("set", 18)]:
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=towel_item,
            operation=operation,
            quantity=quantity,
            location_id=north,
        )
    changes += 4
    batch = await client.post(
        adjustments_url(world.a),
        json={
            "adjustments": [
                {"item_id": towel_item, "operation": "add", "quantity": 1, "location_id": south},
                {"item_id": mug_item, "operation": "subtract", "quantity": 1, "location_id": south},
                {"item_id": towel_item, "operation": "add", "quantity": 2, "location_id": north},
            ]
        },
        headers=world.headers(world.a, "clerk"),
    )
    assert batch.status_code == 200, batch.text
    changes += 3
    transfer = await client.post(
        transfers_url(world.a),
        json={"sku": "TOWEL", "from_location_id": north, "to_location_id": south, "quantity": 3},
        headers=world.headers(world.a, "clerk"),
    )
    assert transfer.status_code == 201, transfer.text
    changes += 2
    released = await held(client, world, tenant=world.a, lines=[{"sku": "MUG", "quantity": 1}])
    response = await client.post(
        reservation_url(world.a, released["id"]) + "/release",
        headers=world.headers(world.a, "clerk"),
    )
    assert response.status_code == 200, response.text
    changes += 2
    for line in [
        {"sku": "MUG", "quantity": 2},
        {"sku": "TOWEL", "quantity": 2, "location_id": south},
    ]:
        await held(client, world, tenant=world.a, lines=[line])
    changes += 2
    async with database.tenant_transaction(world.a) as db:
        later = datetime.now(UTC) + timedelta(hours=1)
        assert await reservation_service.expire_due(db, tenant_id=world.a, now=later) == 2
    changes += 2  # the two holds' releases (reason `expired`)
    last = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 1}])
    await expire(owner_connection, tenant=world.a, reservation_id=last["id"])
    subtract_all = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=towel_item,
        operation="subtract",
        quantity=16,
        location_id=north,
    )
    assert subtract_all.status_code == 200, subtract_all.text
    changes += 3  # the hold, its release at once, the subtract

    assert await assert_one_update_event_per_movement(owner_connection, tenant=world.a) == changes
    async with database.tenant_transaction(world.a) as db:
        assert await find_drift(db, tenant_id=world.a) == []


async def test_shipping_records_an_update_for_each_of_its_two_movements(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    item_id, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 10}, low_stock_threshold=6
    )
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item_id,
        operation="reserve",
        quantity=3,
        location_id=north,
    )

    async with database.tenant_transaction(world.a) as db:
        await inventory_service.ship_units(
            db,
            clerk(world.a),
            units=[inventory_service.LevelUnits(UUID(towel), UUID(north), 3)],
            reference="order:1",
        )

    updates = await events_of(owner_connection, tenant=world.a, type=UPDATED)
    assert [
        (event["data"]["operation"], event["data"]["version"], event["data"]["available"])
        for event in updates
    ] == [("add", 1, 10), ("reserve", 2, 7), ("release", 3, 10), ("subtract", 4, 7)]
    assert await events_of(owner_connection, tenant=world.a, type=LOW_STOCK) == []
    await assert_one_update_event_per_movement(owner_connection, tenant=world.a)


async def test_refused_changes_record_no_event(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    item_id, _ = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5}, low_stock_threshold=4
    )
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item_id,
        operation="reserve",
        quantity=1,
        location_id=north,
    )
    before = await events_of(owner_connection, tenant=world.a)

    refusals = [
        await adjust(
            client,
            world,
            tenant=world.a,
            item_id=item_id,
            operation=operation,
            quantity=quantity,
            location_id=north,
            **fields,
        )
        for operation, quantity, fields in [
            ("subtract", 5, {}),
            ("reserve", 5, {}),
            ("release", 2, {}),
            ("set", 0, {}),
            ("add", 1, {"expected_version": 9}),
            ("subtract", 1, {"role": "viewer"}),
        ]
    ]
    batch = await client.post(
        adjustments_url(world.a),
        json={
            "adjustments": [
                {"item_id": item_id, "operation": "subtract", "quantity": 1, "location_id": north},
                {"item_id": item_id, "operation": "subtract", "quantity": 9, "location_id": north},
            ]
        },
        headers=world.headers(world.a, "clerk"),
    )
    transfer = await client.post(
        transfers_url(world.a),
        json={"sku": "TOWEL", "from_location_id": north, "to_location_id": south, "quantity": 5},
        headers=world.headers(world.a, "clerk"),
    )
    reservation = await hold(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 1}, {"sku": "TOWEL", "quantity": 9}],
    )

    assert [response.status_code for response in refusals] == [409, 409, 409, 409, 409, 403]
    assert (batch.status_code, transfer.status_code, reservation.status_code) == (409, 409, 409)
    assert await events_of(owner_connection, tenant=world.a) == before
