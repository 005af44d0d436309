"""Bad input is 422 (or 415/400), never a 500, and changes nothing."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import create_item, inventory_rows
from tests.inventory.reservation_factories import place, reservation_rows, stocked_item
from tests.kit.assertions import assert_problem, error_locations
from tests.order.factories import CUSTOMER, events, order_rows, orders_url

LINE = {"sku": "TOWEL", "quantity": 1, "unit_price": "1"}


async def snapshot(owner: Connection, tenant: str) -> dict[str, Any]:
    return {
        **await inventory_rows(owner, tenant=tenant),
        **await reservation_rows(owner, tenant=tenant),
        **await order_rows(owner, tenant=tenant),
        "event": await events(owner, tenant=tenant),
    }


async def test_invalid_orders_are_422_naming_every_bad_field_and_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    closed = await place(client, world, tenant=world.a, code="X", active=False)
    item, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 5})
    shirt = await create_item(
        client,
        world,
        tenant=world.a,
        sku="SHIRT",
        name="Shirt",
        variants=[{"sku": "SHIRT-S"}, {"sku": "SHIRT-M"}],
    )
    unknown = "00000000-0000-4000-8000-000000000000"
    before = await snapshot(owner_connection, world.a)

    cases: list[tuple[dict[str, Any], list[list[str | int]]]] = [
        ({"lines": []}, [["body", "lines"]]),
        ({"lines": [LINE] * 101}, [["body", "lines"]]),
        ({"lines": [{**LINE, "quantity": 0}]}, [["body", "lines", 0, "quantity"]]),
        ({"lines": [{**LINE, "quantity": -2}]}, [["body", "lines", 0, "quantity"]]),
        ({"lines": [{**LINE, "quantity": "2"}]}, [["body", "lines", 0, "quantity"]]),
        ({"lines": [{"quantity": 1, "unit_price": "1"}]}, [["body", "lines", 0]]),
        ({"lines": [{**LINE, "colour": "red"}]}, [["body", "lines", 0, "colour"]]),
        (
            {"lines": [{**LINE, "sku": "NOPE"}, {**LINE, "variant_id": unknown, "sku": None}]},
            [["body", "lines", 0, "sku"], ["body", "lines", 1, "variant_id"]],
        ),
        ({"lines": [{**LINE, "sku": "MUG", "variant_id": towel}]}, [["body", "lines", 0, "sku"]]),
        (
            {"lines": [{"item_id": shirt["id"], "quantity": 1, "unit_price": "1"}]},
            [["body", "lines", 0, "variant_id"]],
        ),
        ({"lines": [{**LINE, "sku": "SHIRT"}]}, [["body", "lines", 0, "variant_id"]]),
        (
            {"lines": [{**LINE, "item_id": shirt["id"], "sku": "TOWEL"}]},
            [["body", "lines", 0, "item_id"]],
        ),
        (
            {"lines": [{**LINE, "location_id": unknown}, {**LINE, "location_id": closed}]},
            [["body", "lines", 0, "location_id"], ["body", "lines", 1, "location_id"]],
        ),
        ({"customer": {"email": "not-an-email"}}, [["body", "customer", "email"]]),
        ({"customer": {}}, [["body", "customer", "email"]]),
        ({"currency": None}, [["body", "currency"]]),
        ({"notes": "x" * 5001}, [["body", "notes"]]),
        ({"metadata": {"a": 1}}, [["body", "metadata", "a"]]),
        ({"metadata": {"k" * 41: "v"}}, [["body", "metadata"]]),
        (
            {"shipping_address": {"country": "Netherlands"}},
            [["body", "shipping_address", "country"]],
        ),
        ({"reservation_id": "hold-1"}, [["body", "reservation_id"]]),
        ({"notes": "nul\x00"}, [["body", "notes"]]),
    ]
    for fields, expected in cases:
        body = {"customer": CUSTOMER, "currency": "USD", "lines": [LINE], **fields}
        response = await client.post(
            orders_url(world.a), json=body, headers=world.headers(world.a, "clerk")
        )
        assert error_locations(response) == expected, (fields, response.text)

    broken = await client.post(
        orders_url(world.a),
        content=b'{"customer": ',
        headers=world.headers(world.a, "clerk") | {"Content-Type": "application/json"},
    )
    assert broken.status_code in (400, 422), broken.text
    not_json = await client.post(
        orders_url(world.a),
        content=b"customer=ada",
        headers=world.headers(world.a, "clerk") | {"Content-Type": "text/plain"},
    )
    assert_problem(not_json, status=415, slug="unsupported-media-type")
    bad_id = await client.get(f"{orders_url(world.a)}/not-a-uuid", headers=world.headers(world.a))
    assert error_locations(bad_id) == [["path", "order_id"]]
    assert item
    assert await snapshot(owner_connection, world.a) == before
