"""`PATCH /inventory/{itemId}/stock`: each operation, each refusal, and the movement ledger."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import (
    adjust,
    create_item,
    inventory_rows,
    item_url,
    levels,
    movement_count,
    movements_url,
    new_location,
    stock,
)
from tests.kit.assertions import assert_problem, error_locations


async def stocked(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    on_hand: int,
    reserved: int,
    allow_backorder: bool = False,
) -> tuple[dict[str, Any], str]:
    """An item of tenant A with one level at `on_hand`/`reserved`, and that level's location.

    The level is at version 2 when both are positive (one add, one reserve).
    """
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a, allow_backorder=allow_backorder)
    for operation, quantity in (("add", on_hand), ("reserve", reserved)):
        if quantity == 0:
            continue
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation=operation,
            quantity=quantity,
            location_id=location,
        )
    return item, location


# --- success ------------------------------------------------------------------------------


async def test_add_creates_the_level_and_answers_level_and_movement(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)
    variant_id = item["variants"][0]["id"]

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=10,
        location_id=location,
        reason="received",
        note="first delivery",
        reference="po:2026-0042",
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"level", "movement"}
    assert body["level"] == {
        "variant_id": variant_id,
        "location_id": location,
        "on_hand": 10,
        "reserved": 0,
        "available": 10,
        "low_stock_threshold": None,
        "version": 1,
    }
    movement = body["movement"]
    assert movement == {
        "id": movement["id"],
        "variant_id": variant_id,
        "location_id": location,
        "operation": "add",
        "quantity": 10,
        "on_hand_after": 10,
        "reserved_after": 0,
        "reason": "received",
        "note": "first delivery",
        "reference": "po:2026-0042",
        "actor": "user:tester",
        "created_at": movement["created_at"],
    }
    assert movement["created_at"].endswith("Z")
    row = await owner_connection.fetchrow(
        "SELECT id, level_version, operation, quantity, actor FROM stock_movement "
        "WHERE tenant_id = $1",
        world.a,
    )
    assert row is not None
    assert (str(row["id"]), row["level_version"], row["operation"], row["quantity"]) == (
        movement["id"],
        1,
        "add",
        10,
    )
    assert await levels(owner_connection, tenant=world.a) == {(variant_id, location): (10, 0, 1)}


@pytest.mark.parametrize(
    ("operation", "quantity", "after"),
    [
        ("add", 5, (15, 4)),
        ("subtract", 6, (4, 4)),
        ("subtract", 1, (9, 4)),
        ("reserve", 6, (10, 10)),
        ("reserve", 1, (10, 5)),
        ("release", 4, (10, 0)),
        ("release", 1, (10, 3)),
        ("set", 4, (4, 4)),
        ("set", 25, (25, 4)),
        ("set", 10, (10, 4)),
    ],
)
async def test_each_operation_changes_the_level_and_writes_one_movement(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    operation: str,
    quantity: int,
    after: tuple[int, int],
) -> None:
    item, location = await stocked(client, world, on_hand=10, reserved=4)
    variant_id = item["variants"][0]["id"]

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation=operation,
        quantity=quantity,
        location_id=location,
    )

    assert response.status_code == 200, response.text
    on_hand, reserved = after
    body = response.json()
    assert body["level"] == {
        "variant_id": variant_id,
        "location_id": location,
        "on_hand": on_hand,
        "reserved": reserved,
        "available": on_hand - reserved,
        "low_stock_threshold": None,
        "version": 3,
    }
    assert {key: body["movement"][key] for key in ("operation", "quantity", "reason")} == {
        "operation": operation,
        "quantity": quantity,
        "reason": "other",
    }
    assert (body["movement"]["on_hand_after"], body["movement"]["reserved_after"]) == after
    assert await levels(owner_connection, tenant=world.a) == {
        (variant_id, location): (on_hand, reserved, 3)
    }
    assert await movement_count(owner_connection, tenant=world.a) == 3


async def test_set_to_zero_and_set_on_a_new_level(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item, location = await stocked(client, world, on_hand=10, reserved=0)
    other = await new_location(client, world, tenant=world.a, code="WH-2")
    variant_id = item["variants"][0]["id"]

    zero = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="set",
        quantity=0,
        location_id=location,
        reason="cycle_count",
    )
    new = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="set",
        quantity=7,
        location_id=other,
        reason="cycle_count",
    )

    assert zero.status_code == 200, zero.text
    assert new.status_code == 200, new.text
    assert await levels(owner_connection, tenant=world.a) == {
        (variant_id, location): (0, 0, 2),
        (variant_id, other): (7, 0, 1),
    }


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "quantity", "slug", "extensions"),
    [
        ("subtract", 7, "insufficient-stock", {"available": 6, "on_hand": 10, "requested": 7}),
        ("subtract", 11, "insufficient-stock", {"available": 6, "on_hand": 10, "requested": 11}),
        ("reserve", 7, "insufficient-stock", {"available": 6, "on_hand": 10, "requested": 7}),
        ("release", 5, "insufficient-reserved", {"reserved": 4}),
        ("set", 3, "below-reserved", {"reserved": 4}),
        ("set", 0, "below-reserved", {"reserved": 4}),
    ],
)
async def test_each_refusal_is_409_with_its_slug_and_changes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    operation: str,
    quantity: int,
    slug: str,
    extensions: dict[str, int],
) -> None:
    item, location = await stocked(client, world, on_hand=10, reserved=4)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation=operation,
        quantity=quantity,
        location_id=location,
    )

    body = assert_problem(response, status=409, slug=slug)
    assert {key: body[key] for key in extensions} == extensions
    assert await inventory_rows(owner_connection, tenant=world.a) == before


@pytest.mark.parametrize(
    ("operation", "slug", "extensions"),
    [
        ("subtract", "insufficient-stock", {"available": 0, "on_hand": 0, "requested": 2}),
        ("reserve", "insufficient-stock", {"available": 0, "on_hand": 0, "requested": 2}),
        ("release", "insufficient-reserved", {"reserved": 0}),
    ],
)
async def test_taking_from_a_level_that_does_not_exist_is_409_and_creates_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    operation: str,
    slug: str,
    extensions: dict[str, int],
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation=operation,
        quantity=2,
        location_id=location,
    )

    body = assert_problem(response, status=409, slug=slug)
    assert {key: body[key] for key in extensions} == extensions
    assert await inventory_rows(owner_connection, tenant=world.a) == before


# --- expected_version ---------------------------------------------------------------------


async def test_expected_version_must_match_the_levels_version(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item, location = await stocked(client, world, on_hand=10, reserved=4)
    variant_id = item["variants"][0]["id"]
    before = await inventory_rows(owner_connection, tenant=world.a)

    stale = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=1,
        location_id=location,
        expected_version=1,
    )
    assert await inventory_rows(owner_connection, tenant=world.a) == before
    current = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="subtract",
        quantity=1,
        location_id=location,
        expected_version=2,
    )

    body = assert_problem(stale, status=409, slug="version-conflict")
    assert body["current_version"] == 2
    assert current.status_code == 200, current.text
    assert current.json()["level"]["version"] == 3
    assert await levels(owner_connection, tenant=world.a) == {(variant_id, location): (9, 4, 3)}


async def test_a_stale_version_wins_over_a_rule_refusal(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    item, location = await stocked(client, world, on_hand=10, reserved=4)

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="reserve",
        quantity=100,
        location_id=location,
        expected_version=7,
    )

    assert_problem(response, status=409, slug="version-conflict")


@pytest.mark.parametrize("operation", ["add", "set"])
async def test_expected_version_zero_creates_a_level_that_does_not_exist_yet(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, operation: str
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)
    variant_id = item["variants"][0]["id"]

    created = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation=operation,
        quantity=3,
        location_id=location,
        expected_version=0,
    )
    again = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation=operation,
        quantity=3,
        location_id=location,
        expected_version=0,
    )

    assert created.status_code == 200, created.text
    assert created.json()["level"]["version"] == 1
    body = assert_problem(again, status=409, slug="version-conflict")
    assert body["current_version"] == 1
    assert await levels(owner_connection, tenant=world.a) == {(variant_id, location): (3, 0, 1)}


async def test_expected_version_on_a_missing_level_other_than_zero_is_a_conflict(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=3,
        location_id=location,
        expected_version=1,
    )

    body = assert_problem(response, status=409, slug="version-conflict")
    assert body["current_version"] == 0
    assert await levels(owner_connection, tenant=world.a) == {}


# --- which variant ------------------------------------------------------------------------


async def shirt(client: httpx.AsyncClient, world: TenantWorld) -> dict[str, Any]:
    return await create_item(
        client,
        world,
        tenant=world.a,
        sku="SHIRT",
        variants=[{"sku": "SHIRT-L"}, {"sku": "SHIRT-M"}],
    )


async def test_a_variant_is_named_by_id_or_sku(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await shirt(client, world)
    large, medium = (variant["id"] for variant in item["variants"])

    by_id = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=2,
        location_id=location,
        variant_id=medium,
    )
    by_sku = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=5,
        location_id=location,
        sku="SHIRT-L",
    )
    by_both = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=1,
        location_id=location,
        sku="SHIRT-L",
        variant_id=large,
    )

    for response in (by_id, by_sku, by_both):
        assert response.status_code == 200, response.text
    assert await levels(owner_connection, tenant=world.a) == {
        (medium, location): (2, 0, 1),
        (large, location): (6, 0, 2),
    }
    got = await client.get(item_url(world.a, item["id"]), headers=world.headers(world.a))
    assert [(level["variant_id"], level["on_hand"]) for level in got.json()["stock"]] == [
        (large, 6),
        (medium, 2),
    ]


async def test_a_one_variant_item_needs_no_variant(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a, sku="MUG")

    by_item_sku = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=2,
        location_id=location,
        sku="MUG",
    )
    unnamed = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=1,
        location_id=location,
    )

    assert by_item_sku.status_code == 200, by_item_sku.text
    assert unnamed.status_code == 200, unnamed.text
    assert unnamed.json()["level"]["on_hand"] == 3


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({}, ["body", "variant_id"]),
        ({"sku": "SHIRT"}, ["body", "sku"]),
        ({"sku": "SHIRT-XL"}, ["body", "sku"]),
        ({"sku": "TOWEL"}, ["body", "sku"]),
        ({"variant_id": "medium", "sku": "SHIRT-L"}, ["body", "variant_id"]),
        ({"variant_id": "other-item"}, ["body", "variant_id"]),
        ({"variant_id": "unknown"}, ["body", "variant_id"]),
        ({"variant_id": "not-a-uuid"}, ["body", "variant_id"]),
        ({"sku": "bad sku"}, ["body", "sku"]),
    ],
)
async def test_an_unnamed_ambiguous_or_unknown_variant_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    fields: dict[str, str],
    location: list[str],
) -> None:
    warehouse = await new_location(client, world, tenant=world.a)
    item = await shirt(client, world)
    other = await create_item(client, world, tenant=world.a, sku="TOWEL")
    ids = {
        "medium": item["variants"][1]["id"],
        "other-item": other["variants"][0]["id"],
        "unknown": str(uuid.uuid4()),
    }
    body = {key: ids.get(value, value) for key, value in fields.items()}
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=1,
        location_id=warehouse,
        **body,
    )

    assert location in error_locations(response)
    assert await inventory_rows(owner_connection, tenant=world.a) == before


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["add", "subtract", "reserve", "release", "set"])
async def test_an_unknown_location_is_422_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, operation: str
) -> None:
    item, _ = await stocked(client, world, on_hand=10, reserved=4, allow_backorder=True)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation=operation,
        quantity=1,
        location_id=str(uuid.uuid4()),
    )

    assert error_locations(response) == [["body", "location_id"]]
    assert await inventory_rows(owner_connection, tenant=world.a) == before


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"quantity": 0}, ["body"]),
        ({"operation": "subtract", "quantity": 0}, ["body"]),
        ({"operation": "reserve", "quantity": 0}, ["body"]),
        ({"operation": "release", "quantity": 0}, ["body"]),
        ({"quantity": -1}, ["body", "quantity"]),
        ({"operation": "set", "quantity": -1}, ["body", "quantity"]),
        ({"quantity": 1_000_000_001}, ["body", "quantity"]),
        ({"quantity": 10**30}, ["body", "quantity"]),
        ({"quantity": 1.5}, ["body", "quantity"]),
        ({"quantity": 2.0}, ["body", "quantity"]),
        ({"quantity": "5"}, ["body", "quantity"]),
        ({"quantity": True}, ["body", "quantity"]),
        ({"quantity": None}, ["body", "quantity"]),
        ({"operation": "multiply"}, ["body", "operation"]),
        ({"operation": "ADD"}, ["body", "operation"]),
        ({"operation": None}, ["body", "operation"]),
        ({"reason": "stolen"}, ["body", "reason"]),
        ({"reason": "Received"}, ["body", "reason"]),
        ({"location_id": None}, ["body", "location_id"]),
        ({"location_id": "WH-1"}, ["body", "location_id"]),
        ({"expected_version": -1}, ["body", "expected_version"]),
        ({"expected_version": 2**31}, ["body", "expected_version"]),
        ({"expected_version": "2"}, ["body", "expected_version"]),
        ({"note": "n" * 2001}, ["body", "note"]),
        ({"reference": "r" * 501}, ["body", "reference"]),
        ({"note": "nul\u0000"}, ["body", "note"]),
        ({"item_id": str(uuid.uuid4())}, ["body", "item_id"]),
        ({"on_hand": 5}, ["body", "on_hand"]),
    ],
)
async def test_bad_input_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    changes: dict[str, Any],
    location: list[str],
) -> None:
    item, warehouse = await stocked(client, world, on_hand=10, reserved=4)
    body = {"operation": "add", "quantity": 1, "location_id": warehouse} | changes
    body = {key: value for key, value in body.items() if value is not None}
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.patch(
        f"{item_url(world.a, item['id'])}/stock", json=body, headers=world.headers(world.a)
    )

    assert location in error_locations(response)
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_a_body_that_is_not_json_or_too_large_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item, warehouse = await stocked(client, world, on_hand=10, reserved=4)
    url = f"{item_url(world.a, item['id'])}/stock"
    before = await inventory_rows(owner_connection, tenant=world.a)

    malformed = await client.patch(
        url,
        content=b'{"operation": "add", "quantity": 1,',
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )
    text = await client.patch(
        url,
        content=b"add 1",
        headers=world.headers(world.a) | {"Content-Type": "text/plain"},
    )
    huge = await client.patch(
        url,
        json={"operation": "add", "quantity": 1, "location_id": warehouse, "note": "n" * 2**20},
        headers=world.headers(world.a),
    )
    array = await client.patch(url, json=[1, 2], headers=world.headers(world.a))

    assert_problem(malformed, status=422, slug="validation-error")
    assert_problem(text, status=415, slug="unsupported-media-type")
    assert_problem(huge, status=413, slug="payload-too-large")
    assert_problem(array, status=422, slug="validation-error")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_stock_of_an_unknown_item_is_404(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=str(uuid.uuid4()),
        operation="add",
        quantity=1,
        location_id=location,
    )

    assert_problem(response, status=404, slug="not-found")
    assert await levels(owner_connection, tenant=world.a) == {}


# --- backorders ---------------------------------------------------------------------------


async def test_an_item_allowing_backorders_reserves_beyond_on_hand(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item, location = await stocked(client, world, on_hand=10, reserved=4, allow_backorder=True)
    fresh = await new_location(client, world, tenant=world.a, code="WH-2")
    variant_id = item["variants"][0]["id"]

    beyond = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="reserve",
        quantity=20,
        location_id=location,
    )
    on_new_level = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="reserve",
        quantity=3,
        location_id=fresh,
    )
    count_below = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="set",
        quantity=2,
        location_id=location,
    )
    subtract_all = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="subtract",
        quantity=2,
        location_id=location,
    )
    subtract_more = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="subtract",
        quantity=1,
        location_id=location,
    )

    assert beyond.status_code == 200, beyond.text
    assert (beyond.json()["level"]["reserved"], beyond.json()["level"]["available"]) == (24, -14)
    assert on_new_level.status_code == 200, on_new_level.text
    assert on_new_level.json()["level"] == {
        "variant_id": variant_id,
        "location_id": fresh,
        "on_hand": 0,
        "reserved": 3,
        "available": -3,
        "low_stock_threshold": None,
        "version": 1,
    }
    assert count_below.json()["level"]["available"] == -22, count_below.text
    assert subtract_all.json()["level"]["on_hand"] == 0, subtract_all.text
    body = assert_problem(subtract_more, status=409, slug="insufficient-stock")
    assert (body["available"], body["on_hand"]) == (-24, 0)
    assert await levels(owner_connection, tenant=world.a) == {
        (variant_id, location): (0, 24, 5),
        (variant_id, fresh): (0, 3, 1),
    }


async def test_an_item_without_backorders_cannot_reserve_beyond_available(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item, location = await stocked(client, world, on_hand=10, reserved=4)
    fresh = await new_location(client, world, tenant=world.a, code="WH-2")
    before = await inventory_rows(owner_connection, tenant=world.a)

    beyond = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="reserve",
        quantity=7,
        location_id=location,
    )
    on_new_level = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="reserve",
        quantity=1,
        location_id=fresh,
    )

    assert assert_problem(beyond, status=409, slug="insufficient-stock")["available"] == 6
    assert assert_problem(on_new_level, status=409, slug="insufficient-stock")["available"] == 0
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_toggling_allow_backorder_applies_to_existing_levels(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item, location = await stocked(client, world, on_hand=10, reserved=4)
    variant_id = item["variants"][0]["id"]
    url = item_url(world.a, item["id"])
    headers = world.headers(world.a, "clerk")

    def reserve(quantity: int) -> Any:
        return adjust(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="reserve",
            quantity=quantity,
            location_id=location,
        )

    refused = await reserve(8)
    enabled = await client.put(url, json={"allow_backorder": True}, headers=headers)
    allowed = await reserve(8)
    oversold = await client.put(url, json={"allow_backorder": False}, headers=headers)
    released = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="release",
        quantity=8,
        location_id=location,
    )
    disabled = await client.put(url, json={"allow_backorder": False}, headers=headers)
    refused_again = await reserve(7)

    assert_problem(refused, status=409, slug="insufficient-stock")
    assert enabled.json()["allow_backorder"] is True, enabled.text
    assert allowed.json()["level"]["available"] == -2, allowed.text
    body = assert_problem(oversold, status=409, slug="backorders-outstanding")
    assert body["oversold"] == 2
    assert released.status_code == 200, released.text
    assert disabled.json()["allow_backorder"] is False, disabled.text
    assert_problem(refused_again, status=409, slug="insufficient-stock")
    assert await levels(owner_connection, tenant=world.a) == {(variant_id, location): (10, 4, 4)}
    flag = await owner_connection.fetchval(
        "SELECT allow_backorder FROM stock_level WHERE tenant_id = $1", world.a
    )
    assert flag is False


# --- movements ----------------------------------------------------------------------------


async def test_movements_are_listed_newest_first_in_keyset_pages_with_filters(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await new_location(client, world, tenant=world.a, code="NORTH")
    south = await new_location(client, world, tenant=world.a, code="SOUTH")
    item = await shirt(client, world)
    other = await create_item(client, world, tenant=world.a, sku="OTHER")
    large, medium = (variant["id"] for variant in item["variants"])
    steps = [
        (large, north, "add", 10),
        (medium, north, "add", 4),
        (large, south, "add", 3),
        (large, north, "reserve", 2),
        (medium, north, "subtract", 1),
        (large, south, "set", 8),
        (large, north, "release", 1),
    ]
    made = []
    for variant_id, location, operation, quantity in steps:
        result = await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation=operation,
            quantity=quantity,
            location_id=location,
            variant_id=variant_id,
            reference=f"step:{len(made)}",
        )
        made.append(result["movement"])
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=other["id"],
        operation="add",
        quantity=1,
        location_id=north,
    )
    url = movements_url(world.a, item["id"])

    async def every_page(**params: Any) -> tuple[list[dict[str, Any]], int]:
        seen: list[dict[str, Any]] = []
        pages = 0
        cursor = None
        while True:
            query = params | ({"cursor": cursor} if cursor else {})
            response = await client.get(url, params=query, headers=world.headers(world.a, "viewer"))
            assert response.status_code == 200, response.text
            pages += 1
            seen.extend(response.json()["data"])
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return seen, pages

    newest_first, pages = await every_page(limit=3)
    assert pages == 3
    assert newest_first == list(reversed(made))
    assert [m["reference"] for m in newest_first] == [f"step:{i}" for i in range(6, -1, -1)]
    oldest_first, _ = await every_page(limit=2, sort="created_at")
    assert oldest_first == made
    at_north, _ = await every_page(limit=2, location_id=north)
    assert at_north == [m for m in reversed(made) if m["location_id"] == north]
    of_medium, _ = await every_page(limit=50, variant_id=medium)
    assert [(m["operation"], m["quantity"]) for m in of_medium] == [("subtract", 1), ("add", 4)]
    both, _ = await every_page(limit=1, variant_id=large, location_id=south)
    assert [(m["operation"], m["on_hand_after"]) for m in both] == [("set", 8), ("add", 3)]
    created = [datetime.fromisoformat(m["created_at"]) for m in newest_first]
    assert created == sorted(created, reverse=True)


async def test_movements_of_an_unknown_item_and_bad_parameters(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    item = await create_item(client, world, tenant=world.a)
    headers = world.headers(world.a)

    unknown = await client.get(movements_url(world.a, str(uuid.uuid4())), headers=headers)
    bad_sort = await client.get(
        movements_url(world.a, item["id"]), params={"sort": "quantity"}, headers=headers
    )
    bad_cursor = await client.get(
        movements_url(world.a, item["id"]), params={"cursor": "x"}, headers=headers
    )
    bad_location = await client.get(
        movements_url(world.a, item["id"]), params={"location_id": "x"}, headers=headers
    )
    empty = await client.get(movements_url(world.a, item["id"]), headers=headers)

    assert_problem(unknown, status=404, slug="not-found")
    assert ["query", "sort"] in error_locations(bad_sort)
    assert ["query", "cursor"] in error_locations(bad_cursor)
    assert ["query", "location_id"] in error_locations(bad_location)
    assert empty.json() == {"data": [], "next_cursor": None}
