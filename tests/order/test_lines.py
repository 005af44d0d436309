"""Changing an order's lines: reservations follow, totals are recomputed."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.inventory.factories import inventory_rows, levels
from tests.inventory.reservation_factories import place, stocked_item
from tests.kit.assertions import assert_problem, error_locations
from tests.order.factories import (
    allocations,
    assert_ledger_sound,
    events,
    line_url,
    lines_url,
    moved,
    order_rows,
    order_url,
    payments_url,
    placed,
    read_order,
)


async def snapshot(owner: Connection, tenant: str) -> dict[str, Any]:
    return {
        **await inventory_rows(owner, tenant=tenant),
        **await order_rows(owner, tenant=tenant),
        "event": await events(owner, tenant=tenant),
    }


async def variant_levels(
    owner: Connection, tenant: str, variant_id: str
) -> dict[tuple[str, str], tuple[int, int, int]]:
    return {
        level: numbers
        for level, numbers in (await levels(owner, tenant=tenant)).items()
        if level[0] == variant_id
    }


async def world_with_stock(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str
) -> dict[str, str]:
    north = await place(client, world, tenant=tenant, code="N")
    south = await place(client, world, tenant=tenant, code="S", priority=5)
    _, towel = await stocked_item(
        client, world, tenant=tenant, sku="TOWEL", on_hand={north: 10, south: 4}
    )
    _, mug = await stocked_item(client, world, tenant=tenant, sku="MUG", on_hand={north: 5})
    return {"north": north, "south": south, "towel": towel, "mug": mug}


async def test_adding_a_line_reserves_it_and_recomputes_the_total(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    ids = await world_with_stock(client, world, world.a)
    order = await placed(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 2, "unit_price": "5"}]
    )

    response = await client.post(
        lines_url(world.a, order["id"]),
        json={"sku": "MUG", "quantity": 3, "unit_price": "2.50"},
        headers=world.headers(world.a, "clerk") | {"If-Match": '"1"'},
    )

    assert response.status_code == 201, response.text
    changed = response.json()
    assert response.headers["ETag"] == '"2"'
    assert [(line["sku"], line["quantity"], line["total"]) for line in changed["lines"]] == [
        ("TOWEL", 2, "10.00"),
        ("MUG", 3, "7.50"),
    ]
    assert (changed["total"], changed["version"]) == ("17.50", 2)
    assert allocations(changed) == [[(ids["south"], 2)], [(ids["north"], 3)]]
    assert await levels(owner_connection, tenant=world.a) == {
        (ids["towel"], ids["north"]): (10, 0, 1),
        (ids["towel"], ids["south"]): (4, 2, 2),
        (ids["mug"], ids["north"]): (5, 3, 2),
    }
    assert [kind for kind, _ in await events(owner_connection, tenant=world.a)] == [
        "OrderPlaced",
        "OrderUpdated",
    ]
    await assert_ledger_sound(database, world.a)


async def test_removing_a_line_releases_it_but_never_the_last_one(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    ids = await world_with_stock(client, world, world.a)
    order = await placed(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "TOWEL", "quantity": 2, "unit_price": "5"},
            {"sku": "MUG", "quantity": 1, "unit_price": "3"},
        ],
    )
    towel_line, mug_line = (line["id"] for line in order["lines"])

    removed = await client.delete(
        line_url(world.a, order["id"], towel_line), headers=world.headers(world.a, "clerk")
    )

    assert removed.status_code == 204, removed.text
    after = await read_order(client, world, tenant=world.a, order_id=order["id"])
    assert ([line["id"] for line in after["lines"]], after["total"], after["version"]) == (
        [mug_line],
        "3.00",
        2,
    )
    assert await levels(owner_connection, tenant=world.a) == {
        (ids["towel"], ids["north"]): (10, 0, 1),
        (ids["towel"], ids["south"]): (4, 0, 3),
        (ids["mug"], ids["north"]): (5, 1, 2),
    }
    before = await snapshot(owner_connection, world.a)

    last = await client.delete(
        line_url(world.a, order["id"], mug_line), headers=world.headers(world.a, "clerk")
    )
    gone = await client.delete(
        line_url(world.a, order["id"], towel_line), headers=world.headers(world.a, "clerk")
    )

    assert_problem(last, status=409, slug="order-empty")
    assert_problem(gone, status=404, slug="not-found")
    assert await snapshot(owner_connection, world.a) == before
    await assert_ledger_sound(database, world.a)


async def test_a_quantity_change_adjusts_the_reservation_by_the_difference(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    ids = await world_with_stock(client, world, world.a)
    north, south, towel = ids["north"], ids["south"], ids["towel"]
    order = await placed(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 3, "unit_price": "5"}]
    )
    line = order["lines"][0]["id"]
    assert allocations(order) == [[(south, 3)]]

    grown = await client.patch(
        line_url(world.a, order["id"], line),
        json={"quantity": 9},
        headers=world.headers(world.a, "clerk"),
    )

    # six more: South has one left, so North (which can fill all six) takes them
    assert grown.status_code == 200, grown.text
    assert allocations(grown.json()) == [[(south, 3), (north, 6)]]
    assert (grown.json()["total"], grown.json()["version"]) == ("45.00", 2)
    assert await variant_levels(owner_connection, world.a, towel) == {
        (towel, north): (10, 6, 2),
        (towel, south): (4, 3, 2),
    }

    shrunk = await client.patch(
        line_url(world.a, order["id"], line),
        json={"quantity": 2, "unit_price": "4.50"},
        headers=world.headers(world.a, "clerk") | {"If-Match": '"2"'},
    )

    # seven fewer: the last-placed units (North's six) go first, then one of South's
    assert shrunk.status_code == 200, shrunk.text
    assert allocations(shrunk.json()) == [[(south, 2)]]
    assert (shrunk.json()["lines"][0]["unit_price"], shrunk.json()["total"]) == ("4.50", "9.00")
    assert await variant_levels(owner_connection, world.a, towel) == {
        (towel, north): (10, 0, 3),
        (towel, south): (4, 2, 3),
    }

    priced = await client.patch(
        line_url(world.a, order["id"], line),
        json={"unit_price": "6"},
        headers=world.headers(world.a, "clerk"),
    )
    assert (priced.json()["total"], priced.json()["version"]) == ("12.00", 4)
    assert await variant_levels(owner_connection, world.a, towel) == {
        (towel, north): (10, 0, 3),
        (towel, south): (4, 2, 3),
    }
    assert [kind for kind, _ in await events(owner_connection, tenant=world.a)] == [
        "OrderPlaced",
        "OrderUpdated",
        "OrderUpdated",
        "OrderUpdated",
    ]
    await assert_ledger_sound(database, world.a)


async def test_a_line_naming_a_location_grows_there_or_not_at_all(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    ids = await world_with_stock(client, world, world.a)
    order = await placed(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 3, "unit_price": "5", "location_id": ids["south"]}],
    )
    line = order["lines"][0]["id"]
    before = await snapshot(owner_connection, world.a)

    response = await client.patch(
        line_url(world.a, order["id"], line),
        json={"quantity": 5},
        headers=world.headers(world.a, "clerk"),
    )

    problem = assert_problem(response, status=409, slug="insufficient-stock")
    assert problem["lines"] == [
        {
            "index": 0,
            "variant_id": ids["towel"],
            "location_id": ids["south"],
            "requested": 2,
            "available": 1,
            "sku": "TOWEL",
        }
    ]
    assert await snapshot(owner_connection, world.a) == before


async def test_lines_are_locked_once_the_order_ships(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await world_with_stock(client, world, world.a)
    order = await placed(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "TOWEL", "quantity": 1, "unit_price": "5"},
            {"sku": "MUG", "quantity": 1, "unit_price": "5"},
        ],
    )
    for status in ("processed", "shipped"):
        await moved(client, world, tenant=world.a, order_id=order["id"], status=status)
    line = order["lines"][0]["id"]
    headers = world.headers(world.a, "clerk")
    before = await snapshot(owner_connection, world.a)

    responses = [
        await client.post(
            lines_url(world.a, order["id"]),
            json={"sku": "MUG", "quantity": 1, "unit_price": "1"},
            headers=headers,
        ),
        await client.delete(line_url(world.a, order["id"], line), headers=headers),
        await client.patch(
            line_url(world.a, order["id"], line), json={"quantity": 2}, headers=headers
        ),
    ]

    for response in responses:
        problem = assert_problem(response, status=409, slug="order-locked")
        assert problem["order_status"] == "shipped"
    assert await snapshot(owner_connection, world.a) == before


async def test_line_changes_honour_if_match_and_refuse_bad_input(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await world_with_stock(client, world, world.a)
    order = await placed(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "TOWEL", "quantity": 1, "unit_price": "5"},
            {"sku": "MUG", "quantity": 1, "unit_price": "5"},
        ],
    )
    line = order["lines"][0]["id"]
    stale = world.headers(world.a, "clerk") | {"If-Match": '"7"'}
    headers = world.headers(world.a, "clerk")
    before = await snapshot(owner_connection, world.a)

    stale_responses = [
        await client.post(
            lines_url(world.a, order["id"]),
            json={"sku": "MUG", "quantity": 1, "unit_price": "1"},
            headers=stale,
        ),
        await client.delete(line_url(world.a, order["id"], line), headers=stale),
        await client.patch(
            line_url(world.a, order["id"], line), json={"quantity": 2}, headers=stale
        ),
    ]
    invalid = [
        await client.post(
            lines_url(world.a, order["id"]),
            json={"sku": "NOPE", "quantity": 1, "unit_price": "1"},
            headers=headers,
        ),
        await client.post(
            lines_url(world.a, order["id"]),
            json={"sku": "MUG", "quantity": 1, "unit_price": "1.001"},
            headers=headers,
        ),
        await client.patch(
            line_url(world.a, order["id"], line), json={"quantity": 0}, headers=headers
        ),
        await client.patch(line_url(world.a, order["id"], line), json={}, headers=headers),
        await client.patch(
            line_url(world.a, order["id"], line), json={"unit_price": "0.001"}, headers=headers
        ),
    ]
    missing = await client.patch(
        line_url(world.a, order["id"], "00000000-0000-4000-8000-000000000000"),
        json={"quantity": 2},
        headers=headers,
    )

    for response in stale_responses:
        assert_problem(response, status=412, slug="version-mismatch")
    assert [error_locations(response) for response in invalid] == [
        [["body", "sku"]],
        [["body", "unit_price"]],
        [["body", "quantity"]],
        [["body"]],
        [["body", "unit_price"]],
    ]
    assert_problem(missing, status=404, slug="not-found")
    assert await snapshot(owner_connection, world.a) == before


async def test_the_total_never_falls_below_what_was_paid(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await world_with_stock(client, world, world.a)
    order = await placed(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "TOWEL", "quantity": 2, "unit_price": "5"},
            {"sku": "MUG", "quantity": 1, "unit_price": "5"},
        ],
    )
    paid = await client.post(
        payments_url(world.a, order["id"]),
        json={"amount": "12.00"},
        headers=world.headers(world.a, "clerk"),
    )
    assert paid.status_code == 201, paid.text
    towel_line, mug_line = (line["id"] for line in order["lines"])
    headers = world.headers(world.a, "clerk")
    before = await snapshot(owner_connection, world.a)

    removed = await client.delete(line_url(world.a, order["id"], towel_line), headers=headers)
    cheaper = await client.patch(
        line_url(world.a, order["id"], mug_line), json={"unit_price": "1"}, headers=headers
    )

    for response in (removed, cheaper):
        problem = assert_problem(response, status=409, slug="total-below-paid")
        assert problem["amount_paid"] == "12.00"
    assert await snapshot(owner_connection, world.a) == before

    grown = await client.patch(
        line_url(world.a, order["id"], mug_line), json={"quantity": 2}, headers=headers
    )
    assert (grown.json()["total"], grown.json()["payment_status"]) == ("20.00", "partially_paid")
    read = await client.get(order_url(world.a, order["id"]), headers=headers)
    assert read.json()["amount_paid"] == "12.00"
