"""The worked example of docs/orders.md, step by step."""

from __future__ import annotations

import httpx

from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.inventory.factories import levels
from tests.inventory.reservation_factories import place, stocked_item
from tests.kit.assertions import assert_problem
from tests.order.factories import (
    assert_ledger_sound,
    line_url,
    order_movements,
    patch_order,
    payments_url,
    place_order,
    placed,
)


async def test_the_worked_example(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    tenant = world.a
    clerk = world.headers(tenant, "clerk")
    north = await place(client, world, tenant=tenant, code="N", priority=0)
    south = await place(client, world, tenant=tenant, code="S", priority=5)
    _, towel = await stocked_item(
        client, world, tenant=tenant, sku="TOWEL", on_hand={north: 10, south: 10}, price="10.00"
    )
    _, mug = await stocked_item(
        client, world, tenant=tenant, sku="MUG", on_hand={north: 4}, price="4.00"
    )

    async def numbers() -> dict[tuple[str, str], tuple[int, int]]:
        return {
            level: (on_hand, reserved)
            for level, (on_hand, reserved, _) in (
                await levels(owner_connection, tenant=tenant)
            ).items()
        }

    # 1
    order = await placed(
        client,
        world,
        tenant=tenant,
        lines=[{"sku": "TOWEL", "quantity": 3}, {"sku": "MUG", "quantity": 2}],
    )
    assert (order["number"], order["total"]) == (1, "38.00")
    towel_line, mug_line = (line["id"] for line in order["lines"])
    reserved = {(towel, south): (10, 3), (towel, north): (10, 0), (mug, north): (4, 2)}
    assert await numbers() == reserved
    # 2
    short = await place_order(
        client,
        world,
        tenant=tenant,
        lines=[{"sku": "TOWEL", "quantity": 12}, {"sku": "MUG", "quantity": 3}],
    )
    problem = assert_problem(short, status=409, slug="insufficient-stock")
    assert [(line["sku"], line["requested"], line["available"]) for line in problem["lines"]] == [
        ("MUG", 3, 2)
    ]
    assert await numbers() == reserved
    # 3
    grown = await client.patch(
        line_url(tenant, order["id"], towel_line), json={"quantity": 5}, headers=clerk
    )
    assert grown.json()["total"] == "58.00"
    assert await numbers() == reserved | {(towel, south): (10, 5)}
    # 4
    paid = await client.post(
        payments_url(tenant, order["id"]), json={"amount": "20.00"}, headers=clerk
    )
    assert (paid.json()["payment_status"], paid.json()["amount_paid"]) == (
        "partially_paid",
        "20.00",
    )
    # 5
    early = await patch_order(
        client, world, tenant=tenant, order_id=order["id"], body={"status": "shipped"}
    )
    assert assert_problem(early, status=409, slug="invalid-transition")["allowed"] == [
        "processed",
        "canceled",
    ]
    # 6, 7
    for body in (
        {"status": "processed"},
        {"status": "shipped", "shipment": {"carrier": "PostNL", "tracking_number": "3S123"}},
    ):
        moved = await patch_order(client, world, tenant=tenant, order_id=order["id"], body=body)
        assert moved.status_code == 200, moved.text
    assert await numbers() == {
        (towel, south): (5, 0),
        (towel, north): (10, 0),
        (mug, north): (2, 0),
    }
    shipped = [
        movement[2:]
        for movement in await order_movements(owner_connection, tenant=tenant, order_id=order["id"])
        if movement[4] == "sale"
    ]
    assert sorted(shipped) == sorted(
        [
            ("release", 5, "sale"),
            ("subtract", 5, "sale"),
            ("release", 2, "sale"),
            ("subtract", 2, "sale"),
        ]
    )
    # 8
    locked = await client.delete(line_url(tenant, order["id"], mug_line), headers=clerk)
    assert_problem(locked, status=409, slug="order-locked")
    # 9
    over = await client.post(
        payments_url(tenant, order["id"]), json={"amount": "40.00"}, headers=clerk
    )
    assert assert_problem(over, status=409, slug="payment-exceeds-total")["due"] == "38.00"
    # 10
    done = await patch_order(
        client, world, tenant=tenant, order_id=order["id"], body={"status": "delivered"}
    )
    assert done.json()["status"] == "delivered"
    following = await placed(client, world, tenant=tenant, lines=[{"sku": "TOWEL", "quantity": 1}])
    assert following["number"] == 2
    await assert_ledger_sound(database, tenant)
