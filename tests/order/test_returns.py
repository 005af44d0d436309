"""Returns: only of shipped units, never more than shipped, restocked into the ledger."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.kit.assertions import assert_problem
from tests.order.after_sale import (
    request_return,
    return_url,
    returns_url,
    shipped_order,
    towel_world,
)
from tests.order.factories import assert_ledger_sound, placed

TOWELS = [{"sku": "TOWEL", "quantity": 4, "unit_price": "10.00"}]


async def after_sale_rows(owner: Connection, *, tenant: str) -> dict[str, int]:
    counts = {}
    for table in ("order_return", "order_return_line", "refund"):
        counts[table] = await owner.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant
        )
    counts["events"] = await owner.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1 AND type LIKE 'Return%'", tenant
    )
    return counts


async def level(owner: Connection, *, tenant: str, variant: str, location: str) -> tuple[int, int]:
    row = await owner.fetchrow(
        "SELECT on_hand, reserved FROM stock_level WHERE tenant_id = $1 AND variant_id = $2 "
        "AND location_id = $3",
        tenant,
        variant,
        location,
    )
    assert row is not None
    return row["on_hand"], row["reserved"]


async def test_a_received_return_restocks_its_units_into_the_ledger(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    north, towel = await towel_world(client, world, tenant=world.a)
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS)
    line_id = order["lines"][0]["id"]
    assert await level(owner_connection, tenant=world.a, variant=towel, location=north) == (6, 0)

    created = await request_return(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        lines=[
            {"line_id": line_id, "quantity": 2, "reason": "too small", "restock": True},
            {"line_id": line_id, "quantity": 1, "reason": "torn", "restock": False},
        ],
    )

    assert created.status_code == 201, created.text
    returned = created.json()
    assert (returned["status"], returned["value"], returned["version"]) == ("requested", "30.00", 1)
    assert [(line["quantity"], line["restock"]) for line in returned["lines"]] == [
        (2, True),
        (1, False),
    ]
    assert await level(owner_connection, tenant=world.a, variant=towel, location=north) == (6, 0)

    received = await client.patch(
        return_url(world.a, order["id"], returned["id"]),
        json={"status": "received"},
        headers=world.headers(world.a, "clerk"),
    )

    assert received.status_code == 200, received.text
    assert (received.json()["status"], received.json()["version"]) == ("received", 2)
    assert await level(owner_connection, tenant=world.a, variant=towel, location=north) == (8, 0)
    movements = await owner_connection.fetch(
        "SELECT operation, quantity, reason FROM stock_movement WHERE tenant_id = $1 "
        "AND reference = $2",
        world.a,
        f"return:{returned['id']}",
    )
    assert [tuple(row) for row in movements] == [("add", 2, "returned")]
    await assert_ledger_sound(database, world.a)
    kinds = await owner_connection.fetch(
        "SELECT type, subject FROM event WHERE tenant_id = $1 AND type LIKE 'Return%' "
        "ORDER BY time, id",
        world.a,
    )
    subject = f"orders/{order['id']}/returns/{returned['id']}"
    assert [tuple(row) for row in kinds] == [
        ("ReturnRequested", subject),
        ("ReturnReceived", subject),
    ]
    again = await client.patch(
        return_url(world.a, order["id"], returned["id"]),
        json={"status": "rejected"},
        headers=world.headers(world.a, "clerk"),
    )
    assert_problem(again, status=409, slug="return-closed")
    listed = await client.get(
        returns_url(world.a, order["id"]), headers=world.headers(world.a, "viewer")
    )
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["data"]] == [returned["id"]]
    one = await client.get(
        return_url(world.a, order["id"], returned["id"]), headers=world.headers(world.a, "viewer")
    )
    assert (one.status_code, one.headers["ETag"]) == (200, '"2"')


async def test_returns_are_bounded_by_what_was_shipped_and_not_yet_returned(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await towel_world(client, world, tenant=world.a)
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS)
    line_id = order["lines"][0]["id"]

    first = await request_return(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        lines=[{"line_id": line_id, "quantity": 3, "restock": True}],
    )
    too_many = await request_return(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        lines=[{"line_id": line_id, "quantity": 2, "restock": True}],
    )

    assert first.status_code == 201, first.text
    body = assert_problem(too_many, status=409, slug="return-exceeds-shipped")
    assert body["lines"] == [{"line_id": line_id, "sku": "TOWEL", "requested": 2, "returnable": 1}]
    rejected = await client.patch(
        return_url(world.a, order["id"], first.json()["id"]),
        json={"status": "rejected"},
        headers=world.headers(world.a, "clerk"),
    )
    assert rejected.status_code == 200, rejected.text
    # a rejected return gives its units back to what may be returned
    all_four = await request_return(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        lines=[{"line_id": line_id, "quantity": 4, "restock": False}],
    )
    assert all_four.status_code == 201, all_four.text
    assert await after_sale_rows(owner_connection, tenant=world.a) == {
        "order_return": 2,
        "order_return_line": 2,
        "refund": 0,
        "events": 3,
    }
    kinds = await owner_connection.fetch(
        "SELECT type FROM event WHERE tenant_id = $1 AND type LIKE 'Return%' ORDER BY time, id",
        world.a,
    )
    assert [row["type"] for row in kinds] == [
        "ReturnRequested",
        "ReturnRejected",
        "ReturnRequested",
    ]


async def test_an_order_not_shipped_cannot_be_returned(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await towel_world(client, world, tenant=world.a)
    order = await placed(client, world, tenant=world.a, lines=TOWELS)

    response = await request_return(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        lines=[{"line_id": order["lines"][0]["id"], "quantity": 1, "restock": True}],
    )

    assert_problem(response, status=409, slug="order-not-shipped")
    assert await after_sale_rows(owner_connection, tenant=world.a) == {
        "order_return": 0,
        "order_return_line": 0,
        "refund": 0,
        "events": 0,
    }


async def test_two_concurrent_returns_that_together_exceed_shipped_one_succeeds(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await towel_world(client, world, tenant=world.a)
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS)
    line_id = order["lines"][0]["id"]

    async def attempt() -> httpx.Response:
        return await request_return(
            client,
            world,
            tenant=world.a,
            order_id=order["id"],
            lines=[{"line_id": line_id, "quantity": 3, "restock": True}],
        )

    for _ in range(3):
        await owner_connection.execute("DELETE FROM order_return WHERE tenant_id = $1", world.a)
        results = await asyncio.gather(*(attempt() for _ in range(4)))
        statuses = sorted(response.status_code for response in results)
        assert statuses == [201, 409, 409, 409], [r.text for r in results]
        assert (
            await owner_connection.fetchval(
                "SELECT sum(quantity) FROM order_return_line WHERE tenant_id = $1", world.a
            )
            == 3
        )


async def test_bad_input_unknown_lines_and_other_tenants_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await towel_world(client, world, tenant=world.a)
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS)
    line_id = order["lines"][0]["id"]
    url = returns_url(world.a, order["id"])
    good: dict[str, Any] = {"lines": [{"line_id": line_id, "quantity": 1, "restock": True}]}

    bad_bodies: list[Any] = [
        {"lines": []},
        {"lines": [{"line_id": line_id, "quantity": 0, "restock": True}]},
        {"lines": [{"line_id": line_id, "quantity": 1}]},
        {"lines": [{"line_id": "not-a-uuid", "quantity": 1, "restock": True}]},
        {"lines": [{"line_id": order["id"], "quantity": 1, "restock": True}]},
    ]
    for body in bad_bodies:
        response = await client.post(url, json=body, headers=world.headers(world.a, "clerk"))
        assert response.status_code == 422, (body, response.text)
    viewer = await client.post(url, json=good, headers=world.headers(world.a, "viewer"))
    assert_problem(viewer, status=403, slug="forbidden")
    anonymous = await client.post(url, json=good)
    assert anonymous.status_code == 401
    other = await client.post(url, json=good, headers=world.headers(world.b, "clerk"))
    assert_problem(other, status=403, slug="tenant-mismatch")
    foreign = await client.post(
        returns_url(world.b, order["id"]), json=good, headers=world.headers(world.b, "clerk")
    )
    assert foreign.status_code == 404
    assert await after_sale_rows(owner_connection, tenant=world.a) == {
        "order_return": 0,
        "order_return_line": 0,
        "refund": 0,
        "events": 0,
    }
    missing = await client.get(
        return_url(world.a, order["id"], order["id"]), headers=world.headers(world.a)
    )
    assert missing.status_code == 404
