"""`Idempotency-Key` on stock changes: a retried change happens once and replays its answer."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import (
    adjustments_url,
    create_item,
    items_url,
    levels,
    movement_count,
    new_location,
    row_counts,
    stock,
    stock_url,
    transfers_url,
)
from tests.kit.assertions import assert_problem


def keyed(world: TenantWorld, key: str) -> dict[str, str]:
    return world.headers(world.a, "clerk") | {"Idempotency-Key": key}


async def test_a_retried_adjustment_changes_stock_once_and_replays_the_response(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)
    variant = item["variants"][0]["id"]
    body = {"operation": "add", "quantity": 5, "location_id": location, "reason": "received"}

    first = await client.patch(
        stock_url(world.a, item["id"]), json=body, headers=keyed(world, "k1")
    )
    retried = await client.patch(
        stock_url(world.a, item["id"]), json=body, headers=keyed(world, "k1")
    )
    reordered = await client.patch(
        stock_url(world.a, item["id"]),
        json=dict(reversed(list(body.items()))),
        headers=keyed(world, "k1"),
    )

    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    for replay in (retried, reordered):
        assert replay.status_code == 200
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.headers["content-type"] == "application/json"
        assert replay.content == first.content
    assert await levels(owner_connection, tenant=world.a) == {(variant, location): (5, 0, 1)}
    assert await movement_count(owner_connection, tenant=world.a) == 1


async def test_the_same_key_with_another_body_is_422_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)
    variant = item["variants"][0]["id"]
    url = stock_url(world.a, item["id"])
    await client.patch(
        url,
        json={"operation": "add", "quantity": 5, "location_id": location},
        headers=keyed(world, "k1"),
    )

    response = await client.patch(
        url,
        json={"operation": "add", "quantity": 6, "location_id": location},
        headers=keyed(world, "k1"),
    )

    assert_problem(response, status=422, slug="idempotency-key-reuse")
    assert await levels(owner_connection, tenant=world.a) == {(variant, location): (5, 0, 1)}


async def test_a_refused_adjustment_is_not_stored_so_its_retry_runs_again(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)
    variant = item["variants"][0]["id"]
    body = {"operation": "reserve", "quantity": 2, "location_id": location}

    refused = await client.patch(
        stock_url(world.a, item["id"]), json=body, headers=keyed(world, "r1")
    )
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=3,
        location_id=location,
    )
    retried = await client.patch(
        stock_url(world.a, item["id"]), json=body, headers=keyed(world, "r1")
    )

    assert_problem(refused, status=409, slug="insufficient-stock")
    assert retried.status_code == 200, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert await levels(owner_connection, tenant=world.a) == {(variant, location): (3, 2, 2)}


async def test_retried_batches_transfers_and_creates_happen_once(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await new_location(client, world, tenant=world.a, code="NORTH")
    south = await new_location(client, world, tenant=world.a, code="SOUTH")
    item = await create_item(client, world, tenant=world.a)
    variant = item["variants"][0]["id"]
    requests: list[tuple[str, dict[str, Any], str]] = [
        (
            adjustments_url(world.a),
            {
                "adjustments": [
                    {"item_id": item["id"], "operation": "add", "quantity": 9, "location_id": north}
                ]
            },
            "batch-1",
        ),
        (
            transfers_url(world.a),
            {
                "variant_id": variant,
                "from_location_id": north,
                "to_location_id": south,
                "quantity": 4,
            },
            "transfer-1",
        ),
        (items_url(world.a), {"sku": "MUG", "name": "Mug"}, "create-1"),
    ]

    for url, body, key in requests:
        first = await client.post(url, json=body, headers=keyed(world, key))
        again = await client.post(url, json=body, headers=keyed(world, key))
        assert first.status_code in (200, 201), first.text
        assert again.status_code == first.status_code
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.content == first.content
        assert again.headers.get("Location") == first.headers.get("Location")

    assert await levels(owner_connection, tenant=world.a) == {
        (variant, north): (5, 0, 2),
        (variant, south): (4, 0, 1),
    }
    assert await row_counts(owner_connection, tenant=world.a) == {
        "item": 2,
        "variant": 2,
        "sku": 2,
        "stock_level": 2,
        "stock_movement": 3,
    }


async def test_keys_are_scoped_per_tenant(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    for tenant in (world.a, world.b):
        response = await client.post(
            items_url(tenant),
            json={"sku": "SAME", "name": "Same"},
            headers=world.headers(tenant, "clerk") | {"Idempotency-Key": "shared"},
        )
        assert response.status_code == 201, response.text
        assert "Idempotent-Replayed" not in response.headers

    assert (await row_counts(owner_connection, tenant=world.a))["item"] == 1
    assert (await row_counts(owner_connection, tenant=world.b))["item"] == 1
