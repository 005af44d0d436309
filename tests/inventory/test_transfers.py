"""`POST /stock/transfers`: available stock moves between locations, atomically."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import (
    create_item,
    inventory_rows,
    levels,
    new_location,
    stock,
    transfers_url,
)
from tests.kit.assertions import assert_problem, error_locations


async def warehouse_and_store(
    client: httpx.AsyncClient, world: TenantWorld, *, ascending: bool = True
) -> tuple[str, str]:
    """Two locations, the first with the smaller id when `ascending` (else the larger)."""
    first = await new_location(client, world, tenant=world.a, code="WH")
    second = await new_location(client, world, tenant=world.a, code="ST")
    if (uuid.UUID(first) < uuid.UUID(second)) != ascending:
        return second, first
    return first, second


async def transfer(client: httpx.AsyncClient, world: TenantWorld, **body: Any) -> httpx.Response:
    return await client.post(
        transfers_url(world.a), json=body, headers=world.headers(world.a, "clerk")
    )


@pytest.mark.parametrize("ascending", [True, False], ids=["from-lower-id", "from-higher-id"])
async def test_a_transfer_moves_stock_with_two_transfer_movements(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, ascending: bool
) -> None:
    source, target = await warehouse_and_store(client, world, ascending=ascending)
    item = await create_item(client, world, tenant=world.a, sku="TOWEL")
    variant = item["variants"][0]["id"]
    for operation, quantity in (("add", 10), ("reserve", 3)):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation=operation,
            quantity=quantity,
            location_id=source,
        )

    response = await transfer(
        client,
        world,
        variant_id=variant,
        from_location_id=source,
        to_location_id=target,
        quantity=7,
        note="restock the store",
    )

    assert response.status_code == 201, response.text
    body = response.json()
    subtract, add = body["movements"]
    assert {k: v for k, v in body.items() if k not in ("id", "movements")} == {
        "variant_id": variant,
        "from_location_id": source,
        "to_location_id": target,
        "quantity": 7,
    }
    reference = f"transfer:{body['id']}"
    assert {k: v for k, v in subtract.items() if k not in ("id", "created_at")} == {
        "variant_id": variant,
        "location_id": source,
        "operation": "subtract",
        "quantity": 7,
        "on_hand_after": 3,
        "reserved_after": 3,
        "reason": "transfer",
        "note": "restock the store",
        "reference": reference,
        "actor": "user:tester",
    }
    assert {k: v for k, v in add.items() if k not in ("id", "created_at")} == {
        "variant_id": variant,
        "location_id": target,
        "operation": "add",
        "quantity": 7,
        "on_hand_after": 7,
        "reserved_after": 0,
        "reason": "transfer",
        "note": "restock the store",
        "reference": reference,
        "actor": "user:tester",
    }
    assert await levels(owner_connection, tenant=world.a) == {
        (variant, source): (3, 3, 3),
        (variant, target): (7, 0, 1),
    }
    rows = await owner_connection.fetch(
        "SELECT operation, reason, reference FROM stock_movement "
        "WHERE tenant_id = $1 AND reason = 'transfer' ORDER BY operation",
        world.a,
    )
    assert [tuple(row) for row in rows] == [
        ("add", "transfer", reference),
        ("subtract", "transfer", reference),
    ]


async def test_a_transfer_by_sku_keeps_the_clients_reference(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    source, target = await warehouse_and_store(client, world)
    item = await create_item(
        client,
        world,
        tenant=world.a,
        sku="SHIRT",
        variants=[{"sku": "SHIRT-L"}, {"sku": "SHIRT-M"}],
    )
    medium = item["variants"][1]["id"]
    for location in (source, target):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=4,
            location_id=location,
            sku="SHIRT-M",
        )

    response = await transfer(
        client,
        world,
        sku="SHIRT-M",
        from_location_id=target,
        to_location_id=source,
        quantity=4,
        reference="move:42",
    )

    assert response.status_code == 201, response.text
    assert [m["reference"] for m in response.json()["movements"]] == ["move:42", "move:42"]
    assert await levels(owner_connection, tenant=world.a) == {
        (medium, source): (8, 0, 2),
        (medium, target): (0, 0, 2),
    }


async def test_a_transfer_of_a_backorder_item_creates_a_backorder_level(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    source, target = await warehouse_and_store(client, world)
    item = await create_item(client, world, tenant=world.a, allow_backorder=True)
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=5,
        location_id=source,
    )

    moved = await transfer(
        client,
        world,
        variant_id=item["variants"][0]["id"],
        from_location_id=source,
        to_location_id=target,
        quantity=2,
    )
    oversold = await stock(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="reserve",
        quantity=5,
        location_id=target,
    )

    assert moved.status_code == 201, moved.text
    assert oversold["level"]["available"] == -3
    flags = await owner_connection.fetch(
        "SELECT allow_backorder FROM stock_level WHERE tenant_id = $1", world.a
    )
    assert [row["allow_backorder"] for row in flags] == [True, True]


@pytest.mark.parametrize("ascending", [True, False], ids=["from-lower-id", "from-higher-id"])
async def test_not_enough_available_at_the_source_is_409_and_moves_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, ascending: bool
) -> None:
    source, target = await warehouse_and_store(client, world, ascending=ascending)
    item = await create_item(client, world, tenant=world.a)
    for location, operation, quantity in (
        (source, "add", 10),
        (source, "reserve", 4),
        (target, "add", 1),
    ):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation=operation,
            quantity=quantity,
            location_id=location,
        )
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await transfer(
        client,
        world,
        variant_id=item["variants"][0]["id"],
        from_location_id=source,
        to_location_id=target,
        quantity=7,
    )

    body = assert_problem(response, status=409, slug="insufficient-stock")
    assert (body["available"], body["requested"]) == (6, 7)
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_a_transfer_from_a_location_without_stock_is_409(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    source, target = await warehouse_and_store(client, world)
    item = await create_item(client, world, tenant=world.a)

    response = await transfer(
        client,
        world,
        variant_id=item["variants"][0]["id"],
        from_location_id=source,
        to_location_id=target,
        quantity=1,
    )

    assert assert_problem(response, status=409, slug="insufficient-stock")["available"] == 0
    assert await levels(owner_connection, tenant=world.a) == {}


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"to_location_id": "source"}, ["body"]),
        ({"variant_id": None}, ["body"]),
        ({"variant_id": "unknown"}, ["body", "variant_id"]),
        ({"variant_id": None, "sku": "NOPE"}, ["body", "sku"]),
        ({"sku": "OTHER"}, ["body", "variant_id"]),
        ({"from_location_id": "unknown"}, ["body", "from_location_id"]),
        ({"to_location_id": "unknown"}, ["body", "to_location_id"]),
        ({"from_location_id": None}, ["body", "from_location_id"]),
        ({"quantity": 0}, ["body", "quantity"]),
        ({"quantity": -2}, ["body", "quantity"]),
        ({"quantity": 1_000_000_001}, ["body", "quantity"]),
        ({"quantity": "2"}, ["body", "quantity"]),
        ({"quantity": 1.5}, ["body", "quantity"]),
        ({"reason": "transfer"}, ["body", "reason"]),
    ],
)
async def test_an_invalid_transfer_is_422_and_moves_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    fields: dict[str, Any],
    location: list[str],
) -> None:
    source, target = await warehouse_and_store(client, world)
    item = await create_item(client, world, tenant=world.a, sku="TOWEL")
    await create_item(client, world, tenant=world.a, sku="OTHER")
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=5,
        location_id=source,
    )
    names = {"source": source, "unknown": str(uuid.uuid4())}
    body: dict[str, Any] = {
        "variant_id": item["variants"][0]["id"],
        "from_location_id": source,
        "to_location_id": target,
        "quantity": 2,
    }
    body |= {key: names.get(value, value) for key, value in fields.items()}
    body = {key: value for key, value in body.items() if value is not None}
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await transfer(client, world, **body)

    assert location in error_locations(response)
    assert await inventory_rows(owner_connection, tenant=world.a) == before
