"""`/inventory/{itemId}/variants`: list, read, add, change, delete; the SKU registry."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import (
    create_item,
    inventory_rows,
    item_url,
    new_location,
    sku_registry,
    stock,
    variant_url,
    variants_url,
)
from tests.kit.assertions import assert_problem, error_locations


async def shirt(client: httpx.AsyncClient, world: TenantWorld, tenant: str) -> dict[str, Any]:
    return await create_item(
        client,
        world,
        tenant=tenant,
        sku="SHIRT",
        name="Shirt",
        variants=[
            {"sku": "SHIRT-L", "attributes": {"size": "L"}, "price": "25.50"},
            {"sku": "SHIRT-M", "attributes": {"size": "M"}},
        ],
    )


# --- read ---------------------------------------------------------------------------------


async def test_list_and_get_variants(client: httpx.AsyncClient, world: TenantWorld) -> None:
    item = await shirt(client, world, world.a)
    large, medium = item["variants"]

    listed = await client.get(variants_url(world.a, item["id"]), headers=world.headers(world.a))
    got = await client.get(
        variant_url(world.a, item["id"], medium["id"]), headers=world.headers(world.a, "viewer")
    )
    not_modified = await client.get(
        variant_url(world.a, item["id"], medium["id"]),
        headers=world.headers(world.a) | {"If-None-Match": '"1"'},
    )

    assert listed.status_code == 200, listed.text
    assert listed.json() == {"data": [large, medium], "next_cursor": None}
    assert large == {
        "id": large["id"],
        "sku": "SHIRT-L",
        "attributes": {"size": "L"},
        "price": "25.50",
        "version": 1,
    }
    assert got.status_code == 200, got.text
    assert got.headers["ETag"] == '"1"'
    assert got.json() == medium
    assert not_modified.status_code == 304


async def test_unknown_items_and_variants_are_404(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    item = await shirt(client, world, world.a)
    other = await create_item(client, world, tenant=world.a, sku="OTHER")
    headers = world.headers(world.a)
    foreign_variant = other["variants"][0]["id"]

    responses = [
        await client.get(variants_url(world.a, str(uuid.uuid4())), headers=headers),
        await client.post(
            variants_url(world.a, str(uuid.uuid4())), json={"sku": "X"}, headers=headers
        ),
        await client.get(variant_url(world.a, item["id"], str(uuid.uuid4())), headers=headers),
        await client.get(variant_url(world.a, item["id"], foreign_variant), headers=headers),
        await client.patch(
            variant_url(world.a, item["id"], foreign_variant), json={"price": "1"}, headers=headers
        ),
        await client.delete(variant_url(world.a, item["id"], foreign_variant), headers=headers),
    ]

    for response in responses:
        assert_problem(response, status=404, slug="not-found")
    got = await client.get(item_url(world.a, other["id"]), headers=headers)
    assert got.json()["variants"] == other["variants"]


# --- add ----------------------------------------------------------------------------------


async def test_add_a_variant(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item = await create_item(client, world, tenant=world.a, sku="MUG")

    response = await client.post(
        variants_url(world.a, item["id"]),
        json={"sku": "MUG-RED", "attributes": {"color": "red", "glaze": "matte"}, "price": "9.90"},
        headers=world.headers(world.a, "clerk"),
    )

    assert response.status_code == 201, response.text
    variant = response.json()
    assert response.headers["ETag"] == '"1"'
    assert variant == {
        "id": variant["id"],
        "sku": "MUG-RED",
        "attributes": {"color": "red", "glaze": "matte"},
        "price": "9.90",
        "version": 1,
    }
    got = await client.get(item_url(world.a, item["id"]), headers=world.headers(world.a))
    assert [v["sku"] for v in got.json()["variants"]] == ["MUG", "MUG-RED"]
    assert (await sku_registry(owner_connection, tenant=world.a))["MUG-RED"] == (
        item["id"],
        variant["id"],
    )


@pytest.mark.parametrize("taken", ["SHIRT", "SHIRT-M", "TOWEL", "SHIRT-X"])
async def test_adding_a_variant_with_a_sku_in_use_is_409_and_writes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, taken: str
) -> None:
    item = await shirt(client, world, world.a)
    await create_item(client, world, tenant=world.a, sku="TOWEL")
    await create_item(client, world, tenant=world.a, sku="PANTS", variants=[{"sku": "SHIRT-X"}])
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.post(
        variants_url(world.a, item["id"]), json={"sku": taken}, headers=world.headers(world.a)
    )

    assert_problem(response, status=409, slug="duplicate-sku")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, ["body", "sku"]),
        ({"sku": "bad sku"}, ["body", "sku"]),
        ({"sku": "V", "price": "-1"}, ["body", "price"]),
        ({"sku": "V", "attributes": {"size": ["L"]}}, ["body", "attributes", "size"]),
        ({"sku": "V", "item_id": str(uuid.uuid4())}, ["body", "item_id"]),
    ],
)
async def test_adding_an_invalid_variant_is_422(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    body: dict[str, Any],
    location: list[str],
) -> None:
    item = await shirt(client, world, world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.post(
        variants_url(world.a, item["id"]), json=body, headers=world.headers(world.a)
    )

    assert location in error_locations(response)
    assert await inventory_rows(owner_connection, tenant=world.a) == before


# --- change -------------------------------------------------------------------------------


async def test_patch_changes_attributes_and_price_and_bumps_the_version(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    item = await shirt(client, world, world.a)
    large = item["variants"][0]

    response = await client.patch(
        variant_url(world.a, item["id"], large["id"]),
        json={"attributes": {"size": "XL"}, "price": None},
        headers=world.headers(world.a, "clerk") | {"If-Match": '"1"'},
    )

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    assert response.json() == large | {"attributes": {"size": "XL"}, "price": None, "version": 2}


async def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item = await shirt(client, world, world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.patch(
        variant_url(world.a, item["id"], item["variants"][0]["id"]),
        json={"sku": "SHIRT-XL"},
        headers=world.headers(world.a) | {"If-Match": '"5"'},
    )

    assert_problem(response, status=412, slug="version-mismatch")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_changing_a_variant_sku_frees_the_old_one(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item = await shirt(client, world, world.a)
    large = item["variants"][0]

    response = await client.patch(
        variant_url(world.a, item["id"], large["id"]),
        json={"sku": "SHIRT-XL"},
        headers=world.headers(world.a),
    )

    assert response.status_code == 200, response.text
    assert response.json()["sku"] == "SHIRT-XL"
    registry = await sku_registry(owner_connection, tenant=world.a)
    assert registry == {
        "SHIRT": (item["id"], None),
        "SHIRT-XL": (item["id"], large["id"]),
        "SHIRT-M": (item["id"], item["variants"][1]["id"]),
    }
    reused = await create_item(client, world, tenant=world.a, sku="SHIRT-L")
    assert reused["sku"] == "SHIRT-L"


async def test_changing_the_default_variant_sku_keeps_the_items_own_sku_taken(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item = await create_item(client, world, tenant=world.a, sku="MUG")
    default = item["variants"][0]

    renamed = await client.patch(
        variant_url(world.a, item["id"], default["id"]),
        json={"sku": "MUG-WHITE"},
        headers=world.headers(world.a),
    )
    taken = await client.post(
        "/api/v1/" + world.a + "/inventory",
        json={"sku": "MUG", "name": "Another mug"},
        headers=world.headers(world.a),
    )

    assert renamed.status_code == 200, renamed.text
    assert_problem(taken, status=409, slug="duplicate-sku")
    assert await sku_registry(owner_connection, tenant=world.a) == {
        "MUG": (item["id"], None),
        "MUG-WHITE": (item["id"], default["id"]),
    }
    got = await client.get(item_url(world.a, item["id"]), headers=world.headers(world.a))
    assert (got.json()["sku"], [v["sku"] for v in got.json()["variants"]]) == (
        "MUG",
        ["MUG-WHITE"],
    )


@pytest.mark.parametrize("taken", ["SHIRT-M", "TOWEL", "PANTS-1"])
async def test_changing_a_variant_sku_to_one_in_use_is_409_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, taken: str
) -> None:
    item = await shirt(client, world, world.a)
    await create_item(client, world, tenant=world.a, sku="TOWEL")
    await create_item(client, world, tenant=world.a, sku="PANTS", variants=[{"sku": "PANTS-1"}])
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.patch(
        variant_url(world.a, item["id"], item["variants"][0]["id"]),
        json={"sku": taken},
        headers=world.headers(world.a),
    )

    assert_problem(response, status=409, slug="duplicate-sku")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_patch_with_the_same_sku_keeps_it(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item = await shirt(client, world, world.a)
    registry = await sku_registry(owner_connection, tenant=world.a)

    response = await client.patch(
        variant_url(world.a, item["id"], item["variants"][0]["id"]),
        json={"sku": "SHIRT-L"},
        headers=world.headers(world.a),
    )

    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert await sku_registry(owner_connection, tenant=world.a) == registry


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"sku": None}, ["body"]),
        ({"attributes": None}, ["body"]),
        ({"sku": "no spaces"}, ["body", "sku"]),
        ({"price": "-3"}, ["body", "price"]),
        ({"version": 2}, ["body", "version"]),
    ],
)
async def test_patch_refuses_an_invalid_body(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    body: dict[str, Any],
    location: list[str],
) -> None:
    item = await shirt(client, world, world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.patch(
        variant_url(world.a, item["id"], item["variants"][0]["id"]),
        json=body,
        headers=world.headers(world.a),
    )

    assert location in error_locations(response)
    assert await inventory_rows(owner_connection, tenant=world.a) == before


# --- delete -------------------------------------------------------------------------------


async def test_delete_a_variant_removes_its_levels_and_frees_its_sku(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await shirt(client, world, world.a)
    large, medium = item["variants"]
    for variant in (large, medium):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=3,
            location_id=location,
            variant_id=variant["id"],
        )

    response = await client.delete(
        variant_url(world.a, item["id"], large["id"]), headers=world.headers(world.a)
    )

    assert response.status_code == 204, response.text
    got = await client.get(item_url(world.a, item["id"]), headers=world.headers(world.a))
    assert got.json()["variants"] == [medium]
    assert [level["variant_id"] for level in got.json()["stock"]] == [medium["id"]]
    assert await sku_registry(owner_connection, tenant=world.a) == {
        "SHIRT": (item["id"], None),
        "SHIRT-M": (item["id"], medium["id"]),
    }
    movements = await owner_connection.fetchval(
        "SELECT count(*) FROM stock_movement WHERE tenant_id = $1", world.a
    )
    assert movements == 1


async def test_deleting_the_default_variant_keeps_the_items_sku_registered(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item = await create_item(client, world, tenant=world.a, sku="MUG")
    added = await client.post(
        variants_url(world.a, item["id"]), json={"sku": "MUG-RED"}, headers=world.headers(world.a)
    )

    response = await client.delete(
        variant_url(world.a, item["id"], item["variants"][0]["id"]), headers=world.headers(world.a)
    )

    assert response.status_code == 204, response.text
    assert await sku_registry(owner_connection, tenant=world.a) == {
        "MUG": (item["id"], None),
        "MUG-RED": (item["id"], added.json()["id"]),
    }


async def test_deleting_the_last_variant_is_409_and_keeps_it(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item = await create_item(client, world, tenant=world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.delete(
        variant_url(world.a, item["id"], item["variants"][0]["id"]), headers=world.headers(world.a)
    )

    assert_problem(response, status=409, slug="last-variant")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_deleting_a_variant_with_reserved_stock_is_409_item_in_use(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await shirt(client, world, world.a)
    large = item["variants"][0]
    for operation, quantity in (("add", 4), ("reserve", 3)):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation=operation,
            quantity=quantity,
            location_id=location,
            sku="SHIRT-L",
        )
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.delete(
        variant_url(world.a, item["id"], large["id"]), headers=world.headers(world.a)
    )

    body = assert_problem(response, status=409, slug="item-in-use")
    assert body["reserved"] == 3
    assert await inventory_rows(owner_connection, tenant=world.a) == before


@pytest.mark.parametrize("role", ["viewer", "clerk"])
async def test_only_an_admin_deletes_variants(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    item = await shirt(client, world, world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.delete(
        variant_url(world.a, item["id"], item["variants"][0]["id"]),
        headers=world.headers(world.a, role),
    )

    assert_problem(response, status=403, slug="forbidden")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_concurrent_deletes_never_remove_the_last_variant(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    items = [
        await create_item(
            client,
            world,
            tenant=world.a,
            sku=f"PAIR-{number}",
            variants=[{"sku": f"PAIR-{number}-A"}, {"sku": f"PAIR-{number}-B"}],
        )
        for number in range(5)
    ]

    responses = await asyncio.gather(
        *(
            client.delete(
                variant_url(world.a, item["id"], variant["id"]), headers=world.headers(world.a)
            )
            for item in items
            for variant in item["variants"]
        )
    )

    for first, second in zip(responses[::2], responses[1::2], strict=True):
        assert sorted([first.status_code, second.status_code]) == [204, 409]
    refused = [response for response in responses if response.status_code == 409]
    for response in refused:
        assert_problem(response, status=409, slug="last-variant")
    counts = await owner_connection.fetch(
        "SELECT item_id, count(*) AS variants FROM variant WHERE tenant_id = $1 GROUP BY item_id",
        world.a,
    )
    assert sorted(row["variants"] for row in counts) == [1] * 5
