"""Inventory across tenants: another tenant's ids are unknown, another tenant's token is 403."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import (
    adjustments_url,
    create_item,
    inventory_rows,
    item_url,
    items_url,
    movements_url,
    new_location,
    stock,
    stock_url,
    transfers_url,
    variant_url,
    variants_url,
)
from tests.kit.assertions import assert_problem, error_locations


@dataclass(frozen=True)
class Stocked:
    """A tenant's item (two variants, SKUs `<prefix>` and `<prefix>-1`/`-2`) and locations."""

    tenant: str
    item: str
    variant: str
    other_variant: str
    sku: str
    location: str
    other_location: str


async def stocked(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str, prefix: str
) -> Stocked:
    location = await new_location(client, world, tenant=tenant, code="WH")
    other_location = await new_location(client, world, tenant=tenant, code="ST")
    item = await create_item(
        client,
        world,
        tenant=tenant,
        sku=prefix,
        variants=[{"sku": f"{prefix}-1"}, {"sku": f"{prefix}-2"}],
    )
    variant, other_variant = (variant["id"] for variant in item["variants"])
    for variant_id in (variant, other_variant):
        await stock(
            client,
            world,
            tenant=tenant,
            item_id=item["id"],
            operation="add",
            quantity=10,
            location_id=location,
            variant_id=variant_id,
        )
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="reserve",
        quantity=1,
        location_id=location,
        variant_id=variant,
    )
    return Stocked(
        tenant, item["id"], variant, other_variant, f"{prefix}-1", location, other_location
    )


def adjustment(item: str, location: str, **fields: Any) -> dict[str, Any]:
    return {"operation": "add", "quantity": 1, "location_id": location, "item_id": item} | fields


async def test_another_tenants_ids_are_404_and_its_data_stays_unchanged(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    mine = await stocked(client, world, world.a, "MINE")
    theirs = await stocked(client, world, world.b, "THEIRS")
    before_a = await inventory_rows(owner_connection, tenant=world.a)
    before_b = await inventory_rows(owner_connection, tenant=world.b)
    headers = world.headers(world.a)
    item = item_url(world.a, theirs.item)
    variant = variant_url(world.a, theirs.item, theirs.variant)
    stock_body = {"operation": "add", "quantity": 1, "location_id": mine.location}

    responses = [
        await client.get(item, headers=headers),
        await client.get(item, headers=headers | {"If-None-Match": '"1"'}),
        await client.put(item, json={"name": "Mine now"}, headers=headers),
        await client.put(item, json={"name": "Mine now"}, headers=headers | {"If-Match": '"1"'}),
        await client.delete(item, headers=headers),
        await client.patch(stock_url(world.a, theirs.item), json=stock_body, headers=headers),
        await client.get(movements_url(world.a, theirs.item), headers=headers),
        await client.get(variants_url(world.a, theirs.item), headers=headers),
        await client.post(variants_url(world.a, theirs.item), json={"sku": "NEW"}, headers=headers),
        await client.get(variant, headers=headers),
        await client.patch(variant, json={"price": "1"}, headers=headers),
        await client.delete(variant, headers=headers),
        await client.get(variant_url(world.a, mine.item, theirs.variant), headers=headers),
        await client.patch(
            variant_url(world.a, mine.item, theirs.variant), json={"price": "1"}, headers=headers
        ),
        await client.delete(variant_url(world.a, mine.item, theirs.variant), headers=headers),
    ]

    for response in responses:
        assert_problem(response, status=404, slug="not-found")
    assert await inventory_rows(owner_connection, tenant=world.a) == before_a
    assert await inventory_rows(owner_connection, tenant=world.b) == before_b


async def test_another_tenants_ids_in_a_body_are_422_and_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    mine = await stocked(client, world, world.a, "MINE")
    theirs = await stocked(client, world, world.b, "THEIRS")
    before_a = await inventory_rows(owner_connection, tenant=world.a)
    before_b = await inventory_rows(owner_connection, tenant=world.b)
    headers = world.headers(world.a)

    async def adjust_mine(**fields: Any) -> httpx.Response:
        body = {"operation": "add", "quantity": 1, "location_id": mine.location}
        if "sku" not in fields:
            body["variant_id"] = mine.variant
        return await client.patch(
            stock_url(world.a, mine.item), json=body | fields, headers=headers
        )

    async def adjust_batch(*lines: dict[str, Any]) -> httpx.Response:
        return await client.post(
            adjustments_url(world.a), json={"adjustments": list(lines)}, headers=headers
        )

    async def move(**fields: Any) -> httpx.Response:
        body = {
            "variant_id": mine.variant,
            "from_location_id": mine.location,
            "to_location_id": mine.other_location,
            "quantity": 1,
        } | fields
        return await client.post(transfers_url(world.a), json=body, headers=headers)

    expectations: list[tuple[httpx.Response, list[str | int]]] = []
    for operation in ("add", "set", "reserve", "subtract", "release"):
        expectations.append(
            (
                await adjust_mine(operation=operation, location_id=theirs.location),
                ["body", "location_id"],
            )
        )
    expectations += [
        (await adjust_mine(variant_id=theirs.variant), ["body", "variant_id"]),
        (await adjust_mine(sku=theirs.sku), ["body", "sku"]),
        (
            await adjust_batch(
                adjustment(mine.item, mine.location, variant_id=mine.variant),
                adjustment(theirs.item, mine.location),
            ),
            ["body", "adjustments", 1, "item_id"],
        ),
        (
            await adjust_batch(
                adjustment(mine.item, mine.location, variant_id=mine.variant),
                adjustment(mine.item, theirs.location, variant_id=mine.variant),
            ),
            ["body", "adjustments", 1, "location_id"],
        ),
        (
            await adjust_batch(adjustment(mine.item, mine.location, variant_id=theirs.variant)),
            ["body", "adjustments", 0, "variant_id"],
        ),
        (await move(variant_id=theirs.variant), ["body", "variant_id"]),
        (await move(variant_id=None, sku=theirs.sku), ["body", "sku"]),
        (await move(sku=theirs.sku), ["body", "variant_id"]),
        (await move(from_location_id=theirs.location), ["body", "from_location_id"]),
        (await move(to_location_id=theirs.location), ["body", "to_location_id"]),
    ]

    for response, location in expectations:
        assert location in error_locations(response), response.text
    assert await inventory_rows(owner_connection, tenant=world.a) == before_a
    assert await inventory_rows(owner_connection, tenant=world.b) == before_b


async def test_another_tenants_data_never_shows_in_lists(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    mine = await stocked(client, world, world.a, "MINE")
    theirs = await stocked(client, world, world.b, "THEIRS")
    headers = world.headers(world.a)

    everything = await client.get(items_url(world.a), headers=headers)
    by_their_sku = await client.get(items_url(world.a), params={"sku": theirs.sku}, headers=headers)
    by_their_location = await client.get(
        items_url(world.a), params={"location_id": theirs.location}, headers=headers
    )
    their_movements = await client.get(
        movements_url(world.a, mine.item), params={"location_id": theirs.location}, headers=headers
    )

    assert [item["id"] for item in everything.json()["data"]] == [mine.item]
    assert by_their_sku.json() == {"data": [], "next_cursor": None}
    assert by_their_location.json() == {"data": [], "next_cursor": None}
    assert their_movements.json() == {"data": [], "next_cursor": None}


async def test_a_token_of_another_tenant_is_403_tenant_mismatch_everywhere(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    mine = await stocked(client, world, world.a, "MINE")
    before_a = await inventory_rows(owner_connection, tenant=world.a)
    before_b = await inventory_rows(owner_connection, tenant=world.b)
    item = item_url(world.a, mine.item)
    variant = variant_url(world.a, mine.item, mine.variant)

    for role in ("admin", "clerk", "viewer"):
        headers = world.headers(world.b, role)
        responses = [
            await client.get(items_url(world.a), headers=headers),
            await client.post(items_url(world.a), json={"sku": "X", "name": "x"}, headers=headers),
            await client.get(item, headers=headers),
            await client.put(item, json={"name": "x"}, headers=headers),
            await client.delete(item, headers=headers),
            await client.patch(
                stock_url(world.a, mine.item),
                json={"operation": "add", "quantity": 1, "location_id": mine.location},
                headers=headers,
            ),
            await client.get(movements_url(world.a, mine.item), headers=headers),
            await client.get(variants_url(world.a, mine.item), headers=headers),
            await client.post(variants_url(world.a, mine.item), json={"sku": "V"}, headers=headers),
            await client.get(variant, headers=headers),
            await client.patch(variant, json={"price": "1"}, headers=headers),
            await client.delete(variant, headers=headers),
            await client.post(
                adjustments_url(world.a),
                json={"adjustments": [adjustment(mine.item, mine.location)]},
                headers=headers,
            ),
            await client.post(
                transfers_url(world.a),
                json={
                    "variant_id": mine.variant,
                    "from_location_id": mine.location,
                    "to_location_id": mine.other_location,
                    "quantity": 1,
                },
                headers=headers,
            ),
        ]
        for response in responses:
            assert_problem(response, status=403, slug="tenant-mismatch")

    assert await inventory_rows(owner_connection, tenant=world.a) == before_a
    assert await inventory_rows(owner_connection, tenant=world.b) == before_b
