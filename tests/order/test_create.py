"""Placing orders: allocation, all or nothing, holds taken over, money, numbering."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.inventory.factories import inventory_rows, levels, movement_count
from tests.inventory.reservation_factories import (
    held,
    place,
    reservation_rows,
    reservation_url,
    stocked_item,
    stored_status,
)
from tests.kit.assertions import assert_problem, error_locations
from tests.order.factories import (
    CUSTOMER,
    allocations,
    assert_ledger_sound,
    events,
    order_movements,
    order_rows,
    order_url,
    place_order,
    placed,
)


async def snapshot(owner: Connection, tenant: str) -> dict[str, Any]:
    return {
        **await inventory_rows(owner, tenant=tenant),
        **await reservation_rows(owner, tenant=tenant),
        **await order_rows(owner, tenant=tenant),
        "event": await events(owner, tenant=tenant),
    }


async def test_an_order_reserves_every_line_and_reads_back(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S", priority=5)
    towel_item, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 10, south: 10}, price="19.99"
    )
    _, mug = await stocked_item(
        client, world, tenant=world.a, sku="MUG", on_hand={north: 4}, price="7.5"
    )

    response = await place_order(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 3}, {"variant_id": mug, "quantity": 2}],
        shipping_address={"name": "Ada", "city": "London", "country": "GB"},
        notes="leave at the door",
        metadata={"channel": "web"},
    )

    assert response.status_code == 201, response.text
    order = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == order_url(world.a, order["id"])
    line_ids = [line["id"] for line in order["lines"]]
    assert {
        key: value for key, value in order.items() if key not in ("created_at", "updated_at")
    } == {
        "id": order["id"],
        "number": 1,
        "status": "pending",
        "payment_status": "unpaid",
        "customer": CUSTOMER | {"phone": None},
        "shipping_address": {
            "name": "Ada",
            "line1": None,
            "line2": None,
            "city": "London",
            "region": None,
            "postal_code": None,
            "country": "GB",
        },
        "currency": "USD",
        "lines": [
            {
                "id": line_ids[0],
                "item_id": towel_item,
                "variant_id": towel,
                "sku": "TOWEL",
                "quantity": 3,
                "unit_price": "19.99",
                "total": "59.97",
                "location_id": None,
                "allocations": [{"location_id": south, "quantity": 3}],
            },
            {
                "id": line_ids[1],
                "item_id": order["lines"][1]["item_id"],
                "variant_id": mug,
                "sku": "MUG",
                "quantity": 2,
                "unit_price": "7.50",
                "total": "15.00",
                "location_id": None,
                "allocations": [{"location_id": north, "quantity": 2}],
            },
        ],
        "total": "74.97",
        "amount_paid": "0.00",
        "payments": [],
        "shipment": None,
        "status_history": [
            {"status": "pending", "at": order["status_history"][0]["at"], "actor": "user:tester"}
        ],
        "notes": "leave at the door",
        "metadata": {"channel": "web"},
        "reservation_id": None,
        "amount_refunded": "0.00",
        "refunds": [],
        "exchange_of": None,
        "version": 1,
        "created_by": "user:tester",
        "updated_by": "user:tester",
    }
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (10, 0, 1),
        (towel, south): (10, 3, 2),
        (mug, north): (4, 2, 2),
    }
    assert sorted(
        await order_movements(owner_connection, tenant=world.a, order_id=order["id"])
    ) == sorted(
        [
            (towel, south, "reserve", 3, "other"),
            (mug, north, "reserve", 2, "other"),
        ]
    )
    read = await client.get(
        order_url(world.a, order["id"]), headers=world.headers(world.a, "viewer")
    )
    assert read.status_code == 200
    assert read.json() == order
    assert read.headers["ETag"] == '"1"'
    cached = await client.get(
        order_url(world.a, order["id"]),
        headers=world.headers(world.a, "viewer") | {"If-None-Match": '"1"'},
    )
    assert cached.status_code == 304
    assert await events(owner_connection, tenant=world.a) == [
        ("OrderPlaced", f"orders/{order['id']}")
    ]
    await assert_ledger_sound(database, world.a)


async def test_a_line_goes_to_the_highest_priority_location_then_the_most_available(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await place(client, world, tenant=world.a, code="N", priority=0)
    south = await place(client, world, tenant=world.a, code="S", priority=5)
    east = await place(client, world, tenant=world.a, code="E", priority=5)
    await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 20, south: 6, east: 8}
    )

    order = await placed(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "TOWEL", "quantity": 5, "unit_price": "1.00"},
            {"sku": "TOWEL", "quantity": 4, "unit_price": "1.00"},
            {"sku": "TOWEL", "quantity": 7, "unit_price": "1.00"},
        ],
    )

    # East (priority 5, 8 available) fills the first line whole; then South (6 left against
    # East's 3) the second; no priority-5 location can take 7 any more, so North does.
    assert allocations(order) == [[(east, 5)], [(south, 4)], [(north, 7)]]


async def test_a_line_no_location_can_fill_is_split_in_preference_order(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N", priority=0)
    south = await place(client, world, tenant=world.a, code="S", priority=5)
    east = await place(client, world, tenant=world.a, code="E", priority=5)
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 4, south: 3, east: 5}
    )

    order = await placed(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 10, "unit_price": "2"}]
    )

    assert allocations(order) == [[(east, 5), (south, 3), (north, 2)]]
    assert order["total"] == "20.00"
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (4, 2, 2),
        (towel, south): (3, 3, 2),
        (towel, east): (5, 5, 2),
    }


async def test_a_line_naming_a_location_is_reserved_there(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N", priority=0)
    south = await place(client, world, tenant=world.a, code="S", priority=5)
    item, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5, south: 5}
    )

    order = await placed(
        client,
        world,
        tenant=world.a,
        lines=[{"item_id": item, "quantity": 2, "unit_price": "3.00", "location_id": north}],
    )

    assert allocations(order) == [[(north, 2)]]
    assert order["lines"][0]["location_id"] == north
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (5, 2, 2),
        (towel, south): (5, 0, 1),
    }


async def test_a_short_order_lists_every_short_line_and_reserves_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 3, south: 2}
    )
    _, mug = await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 9})
    _, sock = await stocked_item(client, world, tenant=world.a, sku="SOCK", on_hand={north: 1})
    before = await snapshot(owner_connection, world.a)

    response = await place_order(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "MUG", "quantity": 9, "unit_price": "1"},
            {"sku": "TOWEL", "quantity": 6, "unit_price": "1"},
            {"sku": "SOCK", "quantity": 1, "unit_price": "1", "location_id": south},
        ],
    )

    problem = assert_problem(response, status=409, slug="insufficient-stock")
    assert problem["lines"] == [
        {"index": 1, "variant_id": towel, "requested": 6, "available": 5, "sku": "TOWEL"},
        {
            "index": 2,
            "variant_id": sock,
            "location_id": south,
            "requested": 1,
            "available": 0,
            "sku": "SOCK",
        },
    ]
    assert await snapshot(owner_connection, world.a) == before
    assert mug  # the mug line was fillable, and is not listed


async def test_an_order_takes_a_holds_units_over_without_a_gap(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N", priority=5)
    south = await place(client, world, tenant=world.a, code="S")
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 3, south: 3}
    )
    hold = await held(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 4}],  # North 3, South 1
    )
    levels_before = await levels(owner_connection, tenant=world.a)
    movements_before = await movement_count(owner_connection, tenant=world.a)

    order = await placed(
        client,
        world,
        tenant=world.a,
        reservation_id=hold["id"],
        lines=[
            {"sku": "TOWEL", "quantity": 1, "unit_price": "5", "location_id": south},
            {"sku": "TOWEL", "quantity": 3, "unit_price": "5"},
        ],
    )

    assert allocations(order) == [[(south, 1)], [(north, 3)]]
    assert order["reservation_id"] == hold["id"]
    # the units never stopped being reserved: no movement, no level changed
    assert await levels(owner_connection, tenant=world.a) == levels_before
    assert await movement_count(owner_connection, tenant=world.a) == movements_before
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=hold["id"]) == (
        "converted"
    )
    reservation = await client.get(
        reservation_url(world.a, hold["id"]), headers=world.headers(world.a)
    )
    assert reservation.json()["reference"] == f"order:{order['id']}"
    assert towel
    await assert_ledger_sound(database, world.a)

    # the hold is used up: a second order cannot take it again
    again = await place_order(
        client,
        world,
        tenant=world.a,
        reservation_id=hold["id"],
        lines=[{"sku": "TOWEL", "quantity": 4, "unit_price": "5"}],
    )
    assert assert_problem(again, status=409, slug="reservation-not-held")["status"] == 409


async def test_lines_that_do_not_match_the_hold_are_refused_and_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5, south: 5}
    )
    await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 5})
    hold = await held(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 2, "location_id": north}],
    )
    before = await snapshot(owner_connection, world.a)

    for lines in (
        [{"sku": "TOWEL", "quantity": 3, "unit_price": "1"}],  # more than held
        [{"sku": "TOWEL", "quantity": 1, "unit_price": "1"}],  # fewer
        [
            {"sku": "TOWEL", "quantity": 2, "unit_price": "1"},
            {"sku": "MUG", "quantity": 1, "unit_price": "1"},  # another variant
        ],
        [{"sku": "TOWEL", "quantity": 2, "unit_price": "1", "location_id": south}],  # not there
    ):
        response = await place_order(
            client, world, tenant=world.a, reservation_id=hold["id"], lines=lines
        )
        problem = assert_problem(response, status=409, slug="reservation-mismatch")
        assert problem["held"] == [
            {"variant_id": towel, "sku": "TOWEL", "location_id": north, "quantity": 2}
        ]

    unknown = await place_order(
        client,
        world,
        tenant=world.a,
        reservation_id="00000000-0000-4000-8000-000000000000",
        lines=[{"sku": "TOWEL", "quantity": 2, "unit_price": "1"}],
    )
    assert error_locations(unknown) == [["body", "reservation_id"]]
    assert await snapshot(owner_connection, world.a) == before
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=hold["id"]) == (
        "held"
    )


async def test_totals_are_exact_in_the_currencys_minor_units(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 100})
    await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 100}, price="0.1")

    usd = await placed(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "TOWEL", "quantity": 3, "unit_price": "19.99"},
            {"sku": "MUG", "quantity": 3},
            {"sku": "TOWEL", "quantity": 1, "unit_price": "0.010"},
        ],
    )
    jpy = await placed(
        client,
        world,
        tenant=world.a,
        currency="JPY",
        lines=[{"sku": "TOWEL", "quantity": 3, "unit_price": "1500"}],
    )
    kwd = await placed(
        client,
        world,
        tenant=world.a,
        currency="KWD",
        lines=[
            {"sku": "TOWEL", "quantity": 2, "unit_price": "0.125"},
            {"sku": "MUG", "quantity": 1},
        ],
    )

    assert [line["total"] for line in usd["lines"]] == ["59.97", "0.30", "0.01"]
    assert (usd["total"], usd["amount_paid"]) == ("60.28", "0.00")
    assert (jpy["lines"][0]["unit_price"], jpy["total"], jpy["amount_paid"]) == (
        "1500",
        "4500",
        "0",
    )
    assert [line["unit_price"] for line in kwd["lines"]] == ["0.125", "0.100"]
    assert kwd["total"] == "0.350"


async def test_money_that_does_not_fit_the_currency_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 10}, price="9.99"
    )
    await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 10})
    before = await snapshot(owner_connection, world.a)

    cases: list[tuple[dict[str, Any], list[list[str | int]]]] = [
        (
            {"currency": "USD", "lines": [{"sku": "TOWEL", "quantity": 1, "unit_price": "1.999"}]},
            [["body", "lines", 0, "unit_price"]],
        ),
        (
            {"currency": "JPY", "lines": [{"sku": "TOWEL", "quantity": 1}]},  # 9.99 yen
            [["body", "lines", 0, "unit_price"]],
        ),
        (
            {"currency": "USD", "lines": [{"sku": "MUG", "quantity": 1}]},  # no price anywhere
            [["body", "lines", 0, "unit_price"]],
        ),
        (
            {"currency": "XYZ", "lines": [{"sku": "TOWEL", "quantity": 1}]},
            [["body", "currency"]],
        ),
        (
            {"currency": "usd", "lines": [{"sku": "TOWEL", "quantity": 1}]},
            [["body", "currency"]],
        ),
        (
            {"currency": "USD", "lines": [{"sku": "TOWEL", "quantity": 1, "unit_price": 19.99}]},
            [["body", "lines", 0, "unit_price"]],
        ),
        (
            {"currency": "USD", "lines": [{"sku": "TOWEL", "quantity": 1, "unit_price": "-1"}]},
            [["body", "lines", 0, "unit_price"]],
        ),
        (
            {
                "currency": "USD",
                "lines": [{"sku": "TOWEL", "quantity": 1_000_000_000, "unit_price": "9999999"}],
            },
            [["body", "lines"]],
        ),
    ]
    for fields, expected in cases:
        response = await client.post(
            f"/api/v1/{world.a}/orders",
            json={"customer": CUSTOMER, **fields},
            headers=world.headers(world.a, "clerk"),
        )
        assert error_locations(response) == expected, (fields, response.text)
    assert await snapshot(owner_connection, world.a) == before


async def test_numbers_run_from_one_per_tenant_and_a_refused_order_takes_none(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    numbers: dict[str, list[int]] = {}
    for tenant in (world.a, world.b):
        north = await place(client, world, tenant=tenant, code="N")
        await stocked_item(client, world, tenant=tenant, sku="TOWEL", on_hand={north: 3})
    line = {"sku": "TOWEL", "quantity": 1, "unit_price": "1"}

    numbers[world.a] = [
        (await placed(client, world, tenant=world.a, lines=[line]))["number"] for _ in range(2)
    ]
    short = await place_order(client, world, tenant=world.a, lines=[{**line, "quantity": 2}])
    assert short.status_code == 409
    numbers[world.a].append((await placed(client, world, tenant=world.a, lines=[line]))["number"])
    numbers[world.b] = [
        (await placed(client, world, tenant=world.b, lines=[line]))["number"] for _ in range(2)
    ]

    assert numbers == {world.a: [1, 2, 3], world.b: [1, 2]}


async def test_a_retried_order_with_the_same_idempotency_key_is_placed_once(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    body = {
        "customer": CUSTOMER,
        "currency": "USD",
        "lines": [{"sku": "TOWEL", "quantity": 2, "unit_price": "1"}],
    }
    headers = world.headers(world.a, "clerk") | {"Idempotency-Key": "checkout-77"}

    first = await client.post(f"/api/v1/{world.a}/orders", json=body, headers=headers)
    again = await client.post(f"/api/v1/{world.a}/orders", json=body, headers=headers)
    other = await client.post(
        f"/api/v1/{world.a}/orders", json={**body, "notes": "different"}, headers=headers
    )

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert_problem(other, status=422, slug="idempotency-key-reuse")
    assert len((await order_rows(owner_connection, tenant=world.a))["sales_order"]) == 1
