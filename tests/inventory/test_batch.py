"""`POST /stock/adjustments`: several adjustments, all or nothing, deadlock-free."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import (
    adjustments_url,
    create_item,
    inventory_rows,
    levels,
    movement_count,
    new_location,
    stock,
)
from tests.kit.assertions import assert_problem, error_locations


async def batch(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str, *lines: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        adjustments_url(tenant),
        json={"adjustments": list(lines)},
        headers=world.headers(tenant, "clerk"),
    )


def line(item: dict[str, Any], operation: str, quantity: int, location: str, **fields: Any) -> Any:
    return {
        "item_id": item["id"],
        "operation": operation,
        "quantity": quantity,
        "location_id": location,
        **fields,
    }


async def two_items(
    client: httpx.AsyncClient, world: TenantWorld
) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """Towels (10 at north, 5 at south) and mugs (3 at north); the two locations."""
    north = await new_location(client, world, tenant=world.a, code="NORTH")
    south = await new_location(client, world, tenant=world.a, code="SOUTH")
    towel = await create_item(client, world, tenant=world.a, sku="TOWEL")
    mug = await create_item(client, world, tenant=world.a, sku="MUG")
    for item, location, quantity in ((towel, north, 10), (towel, south, 5), (mug, north, 3)):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=quantity,
            location_id=location,
        )
    return towel, mug, north, south


async def test_a_batch_applies_every_line_and_answers_in_request_order(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    towel, mug, north, south = await two_items(client, world)
    towel_variant, mug_variant = towel["variants"][0]["id"], mug["variants"][0]["id"]

    response = await batch(
        client,
        world,
        world.a,
        line(mug, "reserve", 2, north, reference="order:1"),
        line(towel, "subtract", 4, north, reason="sale"),
        line(towel, "add", 1, south, reason="returned"),
        line(towel, "set", 9, south, reason="cycle_count", expected_version=2),
    )

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [
        (r["movement"]["operation"], r["movement"]["quantity"], r["movement"]["reason"])
        for r in results
    ] == [
        ("reserve", 2, "other"),
        ("subtract", 4, "sale"),
        ("add", 1, "returned"),
        ("set", 9, "cycle_count"),
    ]
    assert [r["level"]["available"] for r in results] == [1, 6, 6, 9]
    assert results[0]["movement"]["reference"] == "order:1"
    assert await levels(owner_connection, tenant=world.a) == {
        (towel_variant, north): (6, 0, 2),
        (towel_variant, south): (9, 0, 3),
        (mug_variant, north): (3, 2, 2),
    }
    assert await movement_count(owner_connection, tenant=world.a) == 7


async def test_a_refused_line_leaves_every_line_unapplied_and_lists_each_refusal(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    towel, mug, north, south = await two_items(client, world)
    before = await inventory_rows(owner_connection, tenant=world.a)
    movements_before = await movement_count(owner_connection, tenant=world.a)

    response = await batch(
        client,
        world,
        world.a,
        line(towel, "add", 100, north),
        line(mug, "subtract", 4, north),
        line(towel, "subtract", 5, south),
        line(towel, "release", 1, south),
        line(mug, "add", 1, south),
        line(towel, "set", 1, north, expected_version=9),
        line(mug, "reserve", 3, north),
    )

    body = assert_problem(response, status=409, slug="insufficient-stock")
    assert body["detail"] == "3 of 7 adjustments were refused; nothing was changed."
    problems = "https://shelfkeeper.dev/problems/"
    assert body["lines"] == [
        {
            "index": 1,
            "type": problems + "insufficient-stock",
            "detail": "Only 3 available; 4 requested.",
            "available": 3,
            "on_hand": 3,
            "requested": 4,
        },
        {
            "index": 3,
            "type": problems + "insufficient-reserved",
            "detail": "Only 0 reserved; cannot release 1.",
            "reserved": 0,
        },
        {
            "index": 5,
            "type": problems + "version-conflict",
            "detail": "The level is at version 2, not 9.",
            "current_version": 2,
        },
    ]
    assert await inventory_rows(owner_connection, tenant=world.a) == before
    assert await movement_count(owner_connection, tenant=world.a) == movements_before


async def test_lines_on_the_same_level_are_cumulative(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    towel, mug, north, south = await two_items(client, world)
    variant, mug_variant = towel["variants"][0]["id"], mug["variants"][0]["id"]

    applied = await batch(
        client,
        world,
        world.a,
        line(towel, "subtract", 6, north),
        line(towel, "add", 2, north),
        line(towel, "subtract", 6, north),
    )
    refused = await batch(
        client,
        world,
        world.a,
        line(towel, "reserve", 1, north),
        line(towel, "subtract", 1, north),
    )

    assert applied.status_code == 200, applied.text
    assert [r["level"]["on_hand"] for r in applied.json()["results"]] == [4, 6, 0]
    assert [r["level"]["version"] for r in applied.json()["results"]] == [2, 3, 4]
    body = assert_problem(refused, status=409, slug="insufficient-stock")
    assert [(entry["index"], entry["available"]) for entry in body["lines"]] == [(0, 0), (1, 0)]
    assert await levels(owner_connection, tenant=world.a) == {
        (variant, north): (0, 0, 4),
        (variant, south): (5, 0, 1),
        (mug_variant, north): (3, 0, 1),
    }


async def test_a_later_line_is_refused_by_what_an_earlier_line_used(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    _, mug, north, _ = await two_items(client, world)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await batch(
        client,
        world,
        world.a,
        line(mug, "reserve", 2, north),
        line(mug, "reserve", 2, north),
    )

    body = assert_problem(response, status=409, slug="insufficient-stock")
    assert [(entry["index"], entry["available"]) for entry in body["lines"]] == [(1, 1)]
    assert await inventory_rows(owner_connection, tenant=world.a) == before


@pytest.mark.parametrize("operation", ["add", "set", "subtract"])
async def test_unknown_items_variants_and_locations_are_422_listing_each_line(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, operation: str
) -> None:
    towel, mug, north, _ = await two_items(client, world)
    before = await inventory_rows(owner_connection, tenant=world.a)
    nowhere = str(uuid.uuid4())

    response = await batch(
        client,
        world,
        world.a,
        line(towel, operation, 1, north),
        line(towel, operation, 1, nowhere),
        {**line(mug, operation, 1, north), "item_id": str(uuid.uuid4())},
        line(mug, operation, 1, north, variant_id=towel["variants"][0]["id"]),
        line(mug, operation, 1, north),
        line(mug, operation, 1, nowhere),
    )

    assert error_locations(response) == [
        ["body", "adjustments", 1, "location_id"],
        ["body", "adjustments", 2, "item_id"],
        ["body", "adjustments", 3, "variant_id"],
        ["body", "adjustments", 5, "location_id"],
    ]
    assert await inventory_rows(owner_connection, tenant=world.a) == before


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"adjustments": []}, ["body", "adjustments"]),
        ({}, ["body", "adjustments"]),
        ({"adjustments": {}}, ["body", "adjustments"]),
        (
            {"adjustments": [{"operation": "add", "quantity": 1}]},
            ["body", "adjustments", 0, "item_id"],
        ),
        ({"adjustments": [None]}, ["body", "adjustments", 0]),
    ],
)
async def test_a_malformed_batch_is_422(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    body: dict[str, Any],
    location: list[str | int],
) -> None:
    response = await client.post(
        adjustments_url(world.a), json=body, headers=world.headers(world.a, "clerk")
    )

    assert location in error_locations(response)
    assert await movement_count(owner_connection, tenant=world.a) == 0


async def test_a_batch_line_with_a_bad_quantity_is_422_at_that_line(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    towel, _, north, _ = await two_items(client, world)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await batch(
        client,
        world,
        world.a,
        line(towel, "add", 1, north),
        line(towel, "add", 0, north),
        line(towel, "subtract", 1_000_000_001, north),
    )

    assert error_locations(response) == [
        ["body", "adjustments", 1],
        ["body", "adjustments", 2, "quantity"],
    ]
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_a_batch_of_501_lines_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    towel, _, north, _ = await two_items(client, world)

    response = await batch(client, world, world.a, *[line(towel, "add", 1, north)] * 501)

    assert ["body", "adjustments"] in error_locations(response)
    assert await movement_count(owner_connection, tenant=world.a) == 3


async def test_concurrent_opposing_batches_do_not_deadlock_and_add_up(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    towel, mug, north, south = await two_items(client, world)
    towel_variant, mug_variant = towel["variants"][0]["id"], mug["variants"][0]["id"]
    a = (towel, north)
    b = (mug, south)
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=mug["id"],
        operation="add",
        quantity=100,
        location_id=south,
    )
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=towel["id"],
        operation="add",
        quantity=90,
        location_id=north,
    )
    movements_before = await movement_count(owner_connection, tenant=world.a)

    def a_then_b() -> list[dict[str, Any]]:
        return [line(*a[:1], "reserve", 1, a[1]), line(*b[:1], "add", 2, b[1])]

    def b_then_a() -> list[dict[str, Any]]:
        return [line(*b[:1], "reserve", 1, b[1]), line(*a[:1], "add", 3, a[1])]

    responses = await asyncio.gather(
        *(batch(client, world, world.a, *(a_then_b() if i % 2 else b_then_a())) for i in range(20))
    )

    assert [response.status_code for response in responses] == [200] * 20, [
        response.text for response in responses if response.status_code != 200
    ]
    assert await levels(owner_connection, tenant=world.a) == {
        (towel_variant, north): (100 + 10 * 3, 10, 2 + 20),
        (towel_variant, south): (5, 0, 1),
        (mug_variant, north): (3, 0, 1),
        (mug_variant, south): (100 + 10 * 2, 10, 1 + 20),
    }
    assert await movement_count(owner_connection, tenant=world.a) == movements_before + 40


@pytest.mark.parametrize("nowhere", [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)])
async def test_an_unknown_location_before_or_after_a_valid_line_is_422_never_500(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, nowhere: uuid.UUID
) -> None:
    towel, _, north, _ = await two_items(client, world)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await batch(
        client,
        world,
        world.a,
        line(towel, "add", 1, str(nowhere)),
        line(towel, "add", 1, north),
    )

    assert error_locations(response) == [["body", "adjustments", 0, "location_id"]]
    assert await inventory_rows(owner_connection, tenant=world.a) == before
