"""`/inventory` items: create, read, update, delete, list with filters and keyset pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import (
    create_item,
    inventory_rows,
    item_url,
    items_url,
    levels,
    new_location,
    row_counts,
    sku_registry,
    stock,
)
from tests.kit.assertions import assert_problem, error_locations

# --- create -------------------------------------------------------------------------------


async def test_create_without_variants_gets_one_default_variant_with_the_item_sku(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        items_url(world.a),
        json={
            "sku": "TOWEL-WHITE",
            "name": "Bath towel",
            "description": "Soft",
            "attributes": {"material": "cotton"},
            "low_stock_threshold": 5,
            "price": "19.99",
        },
        headers=world.headers(world.a, "clerk"),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == item_url(world.a, body["id"])
    assert uuid.UUID(body["id"]).version == 4
    [variant] = body["variants"]
    assert variant == {
        "id": variant["id"],
        "sku": "TOWEL-WHITE",
        "attributes": {},
        "price": "19.99",
        "version": 1,
    }
    assert {k: v for k, v in body.items() if k not in ("id", "created_at", "updated_at")} == {
        "sku": "TOWEL-WHITE",
        "name": "Bath towel",
        "description": "Soft",
        "attributes": {"material": "cotton"},
        "variants": [variant],
        "stock": [],
        "low_stock_threshold": 5,
        "allow_backorder": False,
        "version": 1,
    }
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("Z")
    assert await sku_registry(owner_connection, tenant=world.a) == {
        "TOWEL-WHITE": (body["id"], variant["id"])
    }
    item_row = await owner_connection.fetchrow(
        "SELECT created_by, updated_by FROM item WHERE tenant_id = $1", world.a
    )
    assert item_row is not None
    assert (item_row["created_by"], item_row["updated_by"]) == ("user:tester", "user:tester")
    assert await row_counts(owner_connection, tenant=world.b) == dict.fromkeys(
        ("item", "variant", "sku", "stock_level", "stock_movement"), 0
    )


async def test_create_with_variants_keeps_their_order_attributes_and_prices(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    body = await create_item(
        client,
        world,
        tenant=world.a,
        sku="SHIRT",
        name="Shirt",
        variants=[
            {"sku": "SHIRT-L", "attributes": {"size": "L", "color": "blue"}, "price": "25.00"},
            {"sku": "SHIRT-M", "attributes": {"size": "M", "fabric": "linen"}},
        ],
    )

    assert [
        (variant["sku"], variant["attributes"], variant["price"]) for variant in body["variants"]
    ] == [
        ("SHIRT-L", {"size": "L", "color": "blue"}, "25.00"),
        ("SHIRT-M", {"size": "M", "fabric": "linen"}, None),
    ]
    large, medium = (variant["id"] for variant in body["variants"])
    assert await sku_registry(owner_connection, tenant=world.a) == {
        "SHIRT": (body["id"], None),
        "SHIRT-L": (body["id"], large),
        "SHIRT-M": (body["id"], medium),
    }


@pytest.mark.parametrize(
    ("sent", "shown"),
    [
        ("19.99", "19.99"),
        ("19.990", "19.99"),
        ("0.5", "0.50"),
        ("7", "7.00"),
        ("0", "0.00"),
        ("0.125", "0.125"),
    ],
)
async def test_price_is_a_decimal_string_in_and_out(
    client: httpx.AsyncClient, world: TenantWorld, sent: str, shown: str
) -> None:
    created = await create_item(client, world, tenant=world.a, price=sent)

    got = await client.get(item_url(world.a, created["id"]), headers=world.headers(world.a))

    assert created["variants"][0]["price"] == shown
    assert got.json()["variants"][0]["price"] == shown
    assert f'"price":"{shown}"' in got.text


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        pytest.param({"sku": "DUP"}, {"sku": "DUP"}, id="item-sku-vs-item-sku"),
        pytest.param(
            {"sku": "OTHER", "variants": [{"sku": "DUP"}]},
            {"sku": "DUP"},
            id="item-sku-vs-another-items-variant-sku",
        ),
        pytest.param(
            {"sku": "DUP", "variants": [{"sku": "OTHER-1"}]},
            {"sku": "NEW", "variants": [{"sku": "DUP"}]},
            id="variant-sku-vs-another-items-own-sku",
        ),
        pytest.param(
            {"sku": "OTHER", "variants": [{"sku": "DUP"}]},
            {"sku": "NEW", "variants": [{"sku": "FREE"}, {"sku": "DUP"}]},
            id="variant-sku-vs-another-items-variant-sku",
        ),
        pytest.param(
            {"sku": "DUP", "variants": [{"sku": "OTHER-1"}]},
            {"sku": "DUP"},
            id="default-variant-vs-another-items-own-sku",
        ),
        pytest.param(
            {"sku": "DUP"},
            {"sku": "NEW", "variants": [{"sku": "DUP"}]},
            id="variant-sku-vs-another-items-default-variant",
        ),
    ],
)
async def test_a_duplicate_sku_is_409_and_writes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    existing: dict[str, Any],
    new: dict[str, Any],
) -> None:
    await create_item(client, world, tenant=world.a, **existing)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.post(
        items_url(world.a), json={"name": "Second", **new}, headers=world.headers(world.a)
    )

    body = assert_problem(response, status=409, slug="duplicate-sku")
    assert "`DUP`" in body["detail"]
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_the_same_sku_in_another_tenant_is_fine(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await create_item(client, world, tenant=world.a, sku="SAME", variants=[{"sku": "SAME-1"}])

    own = await create_item(client, world, tenant=world.b, sku="SAME")
    variant = await create_item(
        client, world, tenant=world.b, sku="B-2", variants=[{"sku": "SAME-1"}]
    )

    assert (await row_counts(owner_connection, tenant=world.a))["sku"] == 2
    assert await sku_registry(owner_connection, tenant=world.b) == {
        "SAME": (own["id"], own["variants"][0]["id"]),
        "B-2": (variant["id"], None),
        "SAME-1": (variant["id"], variant["variants"][0]["id"]),
    }


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"sku": None}, ["body", "sku"]),
        ({"sku": ""}, ["body", "sku"]),
        ({"sku": "has space"}, ["body", "sku"]),
        ({"sku": "-leading-dash"}, ["body", "sku"]),
        ({"sku": "X" * 65}, ["body", "sku"]),
        ({"sku": 12}, ["body", "sku"]),
        ({"name": None}, ["body", "name"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "n" * 301}, ["body", "name"]),
        ({"price": "-0.01"}, ["body", "price"]),
        ({"price": "1.00001"}, ["body", "price"]),
        ({"price": "NaN"}, ["body", "price"]),
        ({"price": "a lot"}, ["body", "price"]),
        ({"price": 19.99}, ["body", "price"]),
        ({"price": 20}, ["body", "price"]),
        ({"low_stock_threshold": -1}, ["body", "low_stock_threshold"]),
        ({"low_stock_threshold": "5"}, ["body", "low_stock_threshold"]),
        ({"allow_backorder": "yes"}, ["body", "allow_backorder"]),
        ({"variants": []}, ["body", "variants"]),
        ({"variants": [{"sku": "V-1"}], "price": "1"}, ["body"]),
        ({"variants": [{"sku": "V-1"}, {"sku": "V-1"}]}, ["body"]),
        ({"variants": [{"sku": "TOWEL"}]}, ["body"]),
        ({"variants": [{"sku": "V-1", "price": "-1"}]}, ["body", "variants", 0, "price"]),
        ({"variants": [{"sku": "V-1", "attributes": {"size": 3}}]}, None),
        ({"variants": [{"sku": "V-1", "id": str(uuid.uuid4())}]}, ["body", "variants", 0, "id"]),
        ({"attributes": "not an object"}, ["body", "attributes"]),
        ({"attributes": {"note": "nul\u0000"}}, ["body", "attributes"]),
        ({"attributes": {"nul\u0000": "key"}}, ["body", "attributes"]),
        ({"attributes": {"deep": ["nul\u0000"]}}, ["body", "attributes"]),
        (
            {"variants": [{"sku": "V-1", "attributes": {"fabric": "nul\u0000"}}]},
            ["body", "variants", 0, "attributes"],
        ),
        ({"version": 3}, ["body", "version"]),
        ({"tenant_id": "someone-else"}, ["body", "tenant_id"]),
    ],
)
async def test_create_refuses_an_invalid_body_and_writes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    fields: dict[str, Any],
    location: list[str | int] | None,
) -> None:
    body = {"sku": "TOWEL", "name": "Bath towel"} | fields
    body = {key: value for key, value in body.items() if value is not None}

    response = await client.post(items_url(world.a), json=body, headers=world.headers(world.a))

    locations = error_locations(response)
    if location is not None:
        assert location in locations
    assert await row_counts(owner_connection, tenant=world.a) == dict.fromkeys(
        ("item", "variant", "sku", "stock_level", "stock_movement"), 0
    )


async def test_create_refuses_json_that_is_not_json_and_other_content_types(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    broken = await client.post(
        items_url(world.a),
        content=b'{"sku": "A", ',
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )
    form = await client.post(
        items_url(world.a),
        content=b"sku=A&name=B",
        headers=world.headers(world.a) | {"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert_problem(broken, status=422, slug="validation-error")
    assert_problem(form, status=415, slug="unsupported-media-type")
    assert (await row_counts(owner_connection, tenant=world.a))["item"] == 0


# --- read ---------------------------------------------------------------------------------


async def test_get_returns_the_item_with_variants_stock_and_etag(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    location = await new_location(client, world, tenant=world.a)
    created = await create_item(client, world, tenant=world.a)
    variant_id = created["variants"][0]["id"]
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=created["id"],
        operation="add",
        quantity=8,
        location_id=location,
    )

    response = await client.get(item_url(world.a, created["id"]), headers=world.headers(world.a))

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    assert response.json() == created | {
        "stock": [
            {
                "variant_id": variant_id,
                "location_id": location,
                "on_hand": 8,
                "reserved": 0,
                "available": 8,
                "low_stock_threshold": None,
                "version": 1,
            }
        ]
    }


async def test_get_never_answers_304_because_the_body_carries_live_stock(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_item(client, world, tenant=world.a)
    url = item_url(world.a, created["id"])

    current = await client.get(url, headers=world.headers(world.a) | {"If-None-Match": '"1"'})

    assert current.status_code == 200
    assert current.headers["ETag"] == '"1"'
    assert current.json()["id"] == created["id"]


async def test_get_of_an_unknown_or_invalid_id(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    unknown = await client.get(item_url(world.a, str(uuid.uuid4())), headers=world.headers(world.a))
    invalid = await client.get(item_url(world.a, "not-a-uuid"), headers=world.headers(world.a))

    assert_problem(unknown, status=404, slug="not-found")
    assert ["path", "item_id"] in error_locations(invalid)


# --- update -------------------------------------------------------------------------------


async def test_put_with_the_current_if_match_updates_and_keeps_fields_not_sent(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_item(
        client, world, tenant=world.a, description="Soft", low_stock_threshold=3
    )

    response = await client.put(
        item_url(world.a, created["id"]),
        json={"name": "Beach towel", "attributes": {"color": "sand"}, "description": None},
        headers=world.headers(world.a, "clerk") | {"If-Match": '"1"'},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert response.headers["ETag"] == '"2"'
    assert (
        body["name"],
        body["description"],
        body["attributes"],
        body["low_stock_threshold"],
        body["sku"],
        body["version"],
    ) == ("Beach towel", None, {"color": "sand"}, 3, "TOWEL", 2)
    assert body["variants"] == created["variants"]
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )
    assert body["created_at"] == created["created_at"]
    got = await client.get(item_url(world.a, created["id"]), headers=world.headers(world.a))
    assert got.json() == body
    row = await owner_connection.fetchrow(
        "SELECT name, version FROM item WHERE tenant_id = $1", world.a
    )
    assert row is not None
    assert (row["name"], row["version"]) == ("Beach towel", 2)


async def test_put_without_if_match_applies(client: httpx.AsyncClient, world: TenantWorld) -> None:
    created = await create_item(client, world, tenant=world.a)

    response = await client.put(
        item_url(world.a, created["id"]),
        json={"low_stock_threshold": 9},
        headers=world.headers(world.a, "clerk"),
    )

    assert response.status_code == 200, response.text
    assert (response.json()["low_stock_threshold"], response.json()["version"]) == (9, 2)


@pytest.mark.parametrize("if_match", ['"2"', '"0"', '"abc"', 'W/"1"', '"99999999999"'])
async def test_put_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, if_match: str
) -> None:
    created = await create_item(client, world, tenant=world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.put(
        item_url(world.a, created["id"]),
        json={"name": "Changed"},
        headers=world.headers(world.a, "clerk") | {"If-Match": if_match},
    )

    assert_problem(response, status=412, slug="version-mismatch")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"name": None}, ["body"]),
        ({"name": ""}, ["body", "name"]),
        ({"allow_backorder": None}, ["body"]),
        ({"sku": "NEW-SKU"}, ["body", "sku"]),
        ({"low_stock_threshold": -2}, ["body", "low_stock_threshold"]),
        ({"version": 5}, ["body", "version"]),
    ],
)
async def test_put_refuses_an_invalid_body_and_changes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    fields: dict[str, Any],
    location: list[str],
) -> None:
    created = await create_item(client, world, tenant=world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.put(
        item_url(world.a, created["id"]), json=fields, headers=world.headers(world.a, "clerk")
    )

    assert location in error_locations(response)
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_put_of_an_unknown_item_is_404(client: httpx.AsyncClient, world: TenantWorld) -> None:
    url = item_url(world.a, str(uuid.uuid4()))

    plain = await client.put(url, json={"name": "x"}, headers=world.headers(world.a))
    conditional = await client.put(
        url, json={"name": "x"}, headers=world.headers(world.a) | {"If-Match": '"1"'}
    )

    assert_problem(plain, status=404, slug="not-found")
    assert_problem(conditional, status=404, slug="not-found")


# --- delete -------------------------------------------------------------------------------


async def test_delete_removes_the_item_its_variants_skus_levels_and_ledger(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    keep = await create_item(client, world, tenant=world.a, sku="KEEP")
    gone = await create_item(
        client, world, tenant=world.a, sku="GONE", variants=[{"sku": "GONE-1"}, {"sku": "GONE-2"}]
    )
    for variant_sku in ("GONE-1", "GONE-2"):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=gone["id"],
            operation="add",
            quantity=4,
            location_id=location,
            sku=variant_sku,
        )
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=keep["id"],
        operation="add",
        quantity=1,
        location_id=location,
    )

    response = await client.delete(item_url(world.a, gone["id"]), headers=world.headers(world.a))

    assert response.status_code == 204, response.text
    assert response.content == b""
    again = await client.get(item_url(world.a, gone["id"]), headers=world.headers(world.a))
    assert_problem(again, status=404, slug="not-found")
    assert await row_counts(owner_connection, tenant=world.a) == {
        "item": 1,
        "variant": 1,
        "sku": 1,
        "stock_level": 1,
        "stock_movement": 1,
    }
    reused = await create_item(client, world, tenant=world.a, sku="GONE-1")
    assert reused["sku"] == "GONE-1"


async def test_delete_of_an_item_with_reserved_stock_is_409_item_in_use_and_keeps_it(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    created = await create_item(client, world, tenant=world.a)
    for operation, quantity in (("add", 5), ("reserve", 2)):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=created["id"],
            operation=operation,
            quantity=quantity,
            location_id=location,
        )
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.delete(item_url(world.a, created["id"]), headers=world.headers(world.a))

    body = assert_problem(response, status=409, slug="item-in-use")
    assert body["reserved"] == 2
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_delete_after_the_reservation_is_released_works(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    created = await create_item(client, world, tenant=world.a)
    for operation, quantity in (("add", 5), ("reserve", 2), ("release", 2)):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=created["id"],
            operation=operation,
            quantity=quantity,
            location_id=location,
        )

    response = await client.delete(item_url(world.a, created["id"]), headers=world.headers(world.a))

    assert response.status_code == 204, response.text
    assert await levels(owner_connection, tenant=world.a) == {}


async def test_delete_honours_if_match(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_item(client, world, tenant=world.a)
    url = item_url(world.a, created["id"])

    stale = await client.delete(url, headers=world.headers(world.a) | {"If-Match": '"2"'})
    current = await client.delete(url, headers=world.headers(world.a) | {"If-Match": '"1"'})
    unknown = await client.delete(
        item_url(world.a, str(uuid.uuid4())), headers=world.headers(world.a)
    )

    assert_problem(stale, status=412, slug="version-mismatch")
    assert current.status_code == 204, current.text
    assert_problem(unknown, status=404, slug="not-found")
    assert (await row_counts(owner_connection, tenant=world.a))["item"] == 0


# --- roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "clerk"])
async def test_only_an_admin_deletes_items(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    created = await create_item(client, world, tenant=world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)

    response = await client.delete(
        item_url(world.a, created["id"]), headers=world.headers(world.a, role)
    )

    assert_problem(response, status=403, slug="forbidden")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_a_viewer_reads_but_may_not_create_update_or_change_stock(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    other = await new_location(client, world, tenant=world.a, code="WH-2")
    created = await create_item(client, world, tenant=world.a)
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=created["id"],
        operation="add",
        quantity=5,
        location_id=location,
    )
    before = await inventory_rows(owner_connection, tenant=world.a)
    viewer = world.headers(world.a, "viewer")
    item_id = created["id"]
    variant_id = created["variants"][0]["id"]

    reads = [
        await client.get(items_url(world.a), headers=viewer),
        await client.get(item_url(world.a, item_id), headers=viewer),
        await client.get(f"{item_url(world.a, item_id)}/movements", headers=viewer),
        await client.get(f"{item_url(world.a, item_id)}/variants", headers=viewer),
        await client.get(f"{item_url(world.a, item_id)}/variants/{variant_id}", headers=viewer),
    ]
    writes = [
        await client.post(items_url(world.a), json={"sku": "NEW", "name": "n"}, headers=viewer),
        await client.put(item_url(world.a, item_id), json={"name": "x"}, headers=viewer),
        await client.patch(
            f"{item_url(world.a, item_id)}/stock",
            json={"operation": "add", "quantity": 1, "location_id": location},
            headers=viewer,
        ),
        await client.post(
            f"/api/v1/{world.a}/stock/adjustments",
            json={
                "adjustments": [
                    {"item_id": item_id, "operation": "add", "quantity": 1, "location_id": location}
                ]
            },
            headers=viewer,
        ),
        await client.post(
            f"/api/v1/{world.a}/stock/transfers",
            json={
                "variant_id": variant_id,
                "from_location_id": location,
                "to_location_id": other,
                "quantity": 1,
            },
            headers=viewer,
        ),
        await client.post(
            f"{item_url(world.a, item_id)}/variants", json={"sku": "V-2"}, headers=viewer
        ),
        await client.patch(
            f"{item_url(world.a, item_id)}/variants/{variant_id}",
            json={"price": "1"},
            headers=viewer,
        ),
        await client.delete(f"{item_url(world.a, item_id)}/variants/{variant_id}", headers=viewer),
        await client.delete(item_url(world.a, item_id), headers=viewer),
    ]

    for response in reads:
        assert response.status_code == 200, response.text
    for response in writes:
        assert_problem(response, status=403, slug="forbidden")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


async def test_without_a_credential_every_endpoint_is_401(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_item(client, world, tenant=world.a)
    before = await inventory_rows(owner_connection, tenant=world.a)
    url = item_url(world.a, created["id"])

    responses = [
        await client.get(items_url(world.a)),
        await client.post(items_url(world.a), json={"sku": "N", "name": "n"}),
        await client.get(url),
        await client.put(url, json={"name": "x"}),
        await client.delete(url),
        await client.patch(f"{url}/stock", json={}),
        await client.get(f"{url}/movements"),
        await client.get(f"{url}/variants"),
        await client.post(f"/api/v1/{world.a}/stock/adjustments", json={}),
        await client.post(f"/api/v1/{world.a}/stock/transfers", json={}),
    ]

    for response in responses:
        assert_problem(response, status=401, slug="unauthorized")
    assert await inventory_rows(owner_connection, tenant=world.a) == before


# --- list ---------------------------------------------------------------------------------


async def list_ids(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str, **params: Any
) -> list[str]:
    response = await client.get(items_url(tenant), params=params, headers=world.headers(tenant))
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return [item["id"] for item in response.json()["data"]]


async def test_list_filters_by_item_or_variant_sku_and_name(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    towel = await create_item(client, world, tenant=world.a, sku="TOWEL", name="Bath towel")
    shirt = await create_item(
        client,
        world,
        tenant=world.a,
        sku="SHIRT",
        name="Linen shirt",
        variants=[{"sku": "SHIRT-L"}, {"sku": "SHIRT-M"}],
    )
    sale = await create_item(client, world, tenant=world.a, sku="SALE", name="50% off_towel")
    slash = await create_item(client, world, tenant=world.a, sku="SLASH", name="back\\slash")
    await create_item(client, world, tenant=world.b, sku="SHIRT-L", name="Bath towel")

    assert await list_ids(client, world, world.a) == [
        towel["id"],
        shirt["id"],
        sale["id"],
        slash["id"],
    ]
    assert await list_ids(client, world, world.a, sku="TOWEL") == [towel["id"]]
    assert await list_ids(client, world, world.a, sku="SHIRT") == [shirt["id"]]
    assert await list_ids(client, world, world.a, sku="SHIRT-M") == [shirt["id"]]
    assert await list_ids(client, world, world.a, sku="SHIRT-") == []
    assert await list_ids(client, world, world.a, sku="shirt-m") == []
    assert await list_ids(client, world, world.a, q="towel") == [towel["id"], sale["id"]]
    assert await list_ids(client, world, world.a, q="LINEN") == [shirt["id"]]
    assert await list_ids(client, world, world.a, q="50%") == [sale["id"]]
    assert await list_ids(client, world, world.a, q="%") == [sale["id"]]
    assert await list_ids(client, world, world.a, q="_") == [sale["id"]]
    assert await list_ids(client, world, world.a, q="h t") == [towel["id"]]
    assert await list_ids(client, world, world.a, q="k\\s") == [slash["id"]]
    assert await list_ids(client, world, world.a, q="\\") == [slash["id"]]
    assert await list_ids(client, world, world.a, q="sock") == []
    assert await list_ids(client, world, world.a, q="towel", sku="SALE") == [sale["id"]]


async def test_list_filters_by_location_and_low_stock(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await new_location(client, world, tenant=world.a, code="NORTH")
    south = await new_location(client, world, tenant=world.a, code="SOUTH")
    low = await create_item(client, world, tenant=world.a, sku="LOW", low_stock_threshold=5)
    plenty = await create_item(client, world, tenant=world.a, sku="PLENTY", low_stock_threshold=5)
    reserved = await create_item(client, world, tenant=world.a, sku="RES", low_stock_threshold=5)
    no_threshold = await create_item(client, world, tenant=world.a, sku="NONE")
    unstocked = await create_item(client, world, tenant=world.a, sku="EMPTY", low_stock_threshold=5)
    for item, location, quantity in (
        (low, north, 5),
        (plenty, north, 6),
        (plenty, south, 100),
        (reserved, south, 10),
        (no_threshold, south, 0),
    ):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add" if quantity else "set",
            quantity=quantity,
            location_id=location,
        )
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=reserved["id"],
        operation="reserve",
        quantity=6,
        location_id=south,
    )

    assert await list_ids(client, world, world.a, location_id=north) == [low["id"], plenty["id"]]
    assert await list_ids(client, world, world.a, location_id=south) == [
        plenty["id"],
        reserved["id"],
        no_threshold["id"],
    ]
    assert await list_ids(client, world, world.a, low_stock="true") == [low["id"], reserved["id"]]
    assert await list_ids(client, world, world.a, low_stock="false") == [
        plenty["id"],
        no_threshold["id"],
        unstocked["id"],
    ]
    assert await list_ids(client, world, world.a, low_stock="true", location_id=north) == [
        low["id"]
    ]


@pytest.mark.parametrize("sort", ["name", "-name", "sku", "-sku", "created_at", "-created_at"])
async def test_list_pages_cover_every_item_exactly_once_in_order(
    client: httpx.AsyncClient, world: TenantWorld, sort: str
) -> None:
    names = ["delta", "alpha", "charlie", "bravo", "alpha", "echo", "charlie"]
    created = [
        await create_item(client, world, tenant=world.a, sku=f"SKU-{index}", name=name)
        for index, name in enumerate(names)
    ]
    field = sort.removeprefix("-")

    def sort_key(item: dict[str, Any]) -> tuple[Any, uuid.UUID]:
        value = item[field]
        return (datetime.fromisoformat(value) if field == "created_at" else value), uuid.UUID(
            item["id"]
        )

    expected = sorted(created, key=sort_key, reverse=sort.startswith("-"))

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"sort": sort, "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(
            items_url(world.a), params=params, headers=world.headers(world.a)
        )
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["data"]) == (2 if pages < 4 else 1)
        seen.extend(item["id"] for item in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 4
    assert seen == [item["id"] for item in expected]


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"sort": "price"}, ["query", "sort"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"cursor": "garbage"}, ["query", "cursor"]),
        ({"location_id": "nope"}, ["query", "location_id"]),
        ({"low_stock": "maybe"}, ["query", "low_stock"]),
        ({"q": ""}, ["query", "q"]),
    ],
)
async def test_list_refuses_invalid_parameters(
    client: httpx.AsyncClient, world: TenantWorld, params: dict[str, Any], location: list[str]
) -> None:
    response = await client.get(items_url(world.a), params=params, headers=world.headers(world.a))

    assert location in error_locations(response)


async def test_a_cursor_of_another_sort_order_is_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    for index in range(3):
        await create_item(client, world, tenant=world.a, sku=f"S-{index}")
    first = await client.get(
        items_url(world.a), params={"sort": "name", "limit": 1}, headers=world.headers(world.a)
    )
    cursor = first.json()["next_cursor"]

    response = await client.get(
        items_url(world.a),
        params={"sort": "sku", "limit": 1, "cursor": cursor},
        headers=world.headers(world.a),
    )

    assert ["query", "cursor"] in error_locations(response)


async def test_low_stock_falls_back_to_the_tenants_default_threshold(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    location = await new_location(client, world, tenant=world.a)
    at_default = await create_item(client, world, tenant=world.a, sku="AT-DEFAULT")
    above_default = await create_item(client, world, tenant=world.a, sku="ABOVE")
    own_threshold = await create_item(
        client, world, tenant=world.a, sku="OWN", low_stock_threshold=1
    )
    for item, quantity in ((at_default, 3), (above_default, 4), (own_threshold, 2)):
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=quantity,
            location_id=location,
        )
    assert await list_ids(client, world, world.a, low_stock="true") == []

    patched = await client.patch(
        f"/api/v1/tenants/{world.a}",
        json={"settings": {"low_stock_threshold": 3}},
        headers=world.platform,
    )

    assert patched.status_code == 200, patched.text
    assert await list_ids(client, world, world.a, low_stock="true") == [at_default["id"]]
    assert await list_ids(client, world, world.a, low_stock="false") == [
        above_default["id"],
        own_threshold["id"],
    ]
