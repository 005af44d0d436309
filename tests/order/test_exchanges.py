"""Exchanges: a return plus a new linked order, reserved all or nothing."""

from __future__ import annotations

import httpx

from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.inventory.reservation_factories import stocked_item
from tests.kit.assertions import assert_problem
from tests.order.after_sale import exchanges_url, shipped_order, towel_world
from tests.order.factories import assert_ledger_sound, order_rows

TOWELS = [{"sku": "TOWEL", "quantity": 3, "unit_price": "10.00"}]


async def test_an_exchange_returns_units_and_places_a_linked_order(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    north, _ = await towel_world(client, world, tenant=world.a)
    await stocked_item(client, world, tenant=world.a, sku="ROBE", on_hand={north: 2})
    order = await shipped_order(
        client, world, tenant=world.a, lines=TOWELS, shipping_address={"city": "Rotterdam"}
    )

    response = await client.post(
        exchanges_url(world.a, order["id"]),
        json={
            "return_lines": [{"line_id": order["lines"][0]["id"], "quantity": 2, "restock": True}],
            "new_lines": [{"sku": "ROBE", "quantity": 1, "unit_price": "25.00"}],
        },
        headers=world.headers(world.a, "clerk"),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    new_order = body["order"]
    assert body["price_difference"] == "5.00"
    assert (body["return"]["status"], body["return"]["value"]) == ("requested", "20.00")
    assert body["return"]["exchange_order_id"] == new_order["id"]
    assert (new_order["status"], new_order["exchange_of"], new_order["total"]) == (
        "pending",
        order["id"],
        "25.00",
    )
    assert new_order["metadata"] == {"exchange_of": order["id"]}
    assert new_order["customer"] == order["customer"]
    assert new_order["shipping_address"] == order["shipping_address"]
    robe = await owner_connection.fetchrow(
        "SELECT on_hand, reserved FROM stock_level l JOIN variant v "
        "ON v.tenant_id = l.tenant_id AND v.id = l.variant_id "
        "WHERE l.tenant_id = $1 AND v.sku = 'ROBE'",
        world.a,
    )
    assert robe is not None
    assert tuple(robe) == (2, 1)
    await assert_ledger_sound(database, world.a)


async def test_an_exchange_whose_new_lines_cannot_be_reserved_creates_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north, _ = await towel_world(client, world, tenant=world.a)
    await stocked_item(client, world, tenant=world.a, sku="ROBE", on_hand={north: 1})
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS)
    before = await order_rows(owner_connection, tenant=world.a)
    events_before = await owner_connection.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1", world.a
    )

    short = await client.post(
        exchanges_url(world.a, order["id"]),
        json={
            "return_lines": [{"line_id": order["lines"][0]["id"], "quantity": 1, "restock": True}],
            "new_lines": [{"sku": "ROBE", "quantity": 2, "unit_price": "25.00"}],
        },
        headers=world.headers(world.a, "clerk"),
    )
    too_many = await client.post(
        exchanges_url(world.a, order["id"]),
        json={
            "return_lines": [{"line_id": order["lines"][0]["id"], "quantity": 4, "restock": True}],
            "new_lines": [{"sku": "ROBE", "quantity": 1, "unit_price": "25.00"}],
        },
        headers=world.headers(world.a, "clerk"),
    )
    empty = await client.post(
        exchanges_url(world.a, order["id"]),
        json={"return_lines": [], "new_lines": []},
        headers=world.headers(world.a, "clerk"),
    )
    viewer = await client.post(
        exchanges_url(world.a, order["id"]),
        json={"return_lines": [], "new_lines": []},
        headers=world.headers(world.a, "viewer"),
    )

    assert_problem(short, status=409, slug="insufficient-stock")
    assert_problem(too_many, status=409, slug="return-exceeds-shipped")
    assert empty.status_code == 422
    assert_problem(viewer, status=403, slug="forbidden")
    assert await order_rows(owner_connection, tenant=world.a) == before
    assert (
        await owner_connection.fetchval(
            "SELECT count(*) FROM order_return WHERE tenant_id = $1", world.a
        )
        == 0
    )
    assert (
        await owner_connection.fetchval("SELECT count(*) FROM event WHERE tenant_id = $1", world.a)
        == events_before
    )
