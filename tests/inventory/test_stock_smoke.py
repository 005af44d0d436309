"""First end-to-end checks of items and stock operations."""

from __future__ import annotations

import httpx

from tests.conftest import TenantWorld


async def make_location(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str, code: str
) -> str:
    response = await client.post(
        f"/api/v1/{tenant}/locations",
        json={"code": code, "name": code, "kind": "warehouse"},
        headers=world.headers(tenant),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_item_stock_lifecycle(client: httpx.AsyncClient, world: TenantWorld) -> None:
    tenant = world.a
    headers = world.headers(tenant, "clerk")
    warehouse = await make_location(client, world, tenant, "WH")
    store = await make_location(client, world, tenant, "ST")
    created = await client.post(
        f"/api/v1/{tenant}/inventory",
        json={"sku": "TOWEL", "name": "Bath towel", "price": "19.99"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    item = created.json()
    assert [v["sku"] for v in item["variants"]] == ["TOWEL"]
    assert item["variants"][0]["price"] == "19.99"
    url = f"/api/v1/{tenant}/inventory/{item['id']}/stock"

    added = await client.patch(
        url,
        json={"operation": "add", "quantity": 10, "location_id": warehouse, "reason": "received"},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    assert (added.json()["level"]["on_hand"], added.json()["level"]["available"]) == (10, 10)

    reserved = await client.patch(
        url, json={"operation": "reserve", "quantity": 4, "location_id": warehouse}, headers=headers
    )
    assert reserved.json()["level"]["reserved"] == 4, reserved.text
    too_much = await client.patch(
        url,
        json={"operation": "subtract", "quantity": 7, "location_id": warehouse},
        headers=headers,
    )
    assert too_much.status_code == 409, too_much.text
    assert too_much.json()["type"].endswith("/insufficient-stock")
    assert too_much.json()["available"] == 6
    below = await client.patch(
        url, json={"operation": "set", "quantity": 3, "location_id": warehouse}, headers=headers
    )
    assert below.json()["type"].endswith("/below-reserved"), below.text
    release = await client.patch(
        url, json={"operation": "release", "quantity": 5, "location_id": warehouse}, headers=headers
    )
    assert release.json()["type"].endswith("/insufficient-reserved"), release.text
    stale = await client.patch(
        url,
        json={"operation": "add", "quantity": 1, "location_id": warehouse, "expected_version": 1},
        headers=headers,
    )
    assert stale.json()["type"].endswith("/version-conflict"), stale.text

    moved = await client.post(
        f"/api/v1/{tenant}/stock/transfers",
        json={
            "sku": "TOWEL",
            "from_location_id": warehouse,
            "to_location_id": store,
            "quantity": 6,
        },
        headers=headers,
    )
    assert moved.status_code == 201, moved.text
    batch = await client.post(
        f"/api/v1/{tenant}/stock/adjustments",
        json={
            "adjustments": [
                {"item_id": item["id"], "operation": "add", "quantity": 1, "location_id": store},
                {
                    "item_id": item["id"],
                    "operation": "subtract",
                    "quantity": 99,
                    "location_id": store,
                },
            ]
        },
        headers=headers,
    )
    assert batch.status_code == 409, batch.text
    assert [line["index"] for line in batch.json()["lines"]] == [1]

    final = (await client.get(f"/api/v1/{tenant}/inventory/{item['id']}", headers=headers)).json()
    levels = {
        level["location_id"]: (level["on_hand"], level["reserved"]) for level in final["stock"]
    }
    assert levels == {warehouse: (4, 4), store: (6, 0)}
    movements = await client.get(
        f"/api/v1/{tenant}/inventory/{item['id']}/movements", headers=headers
    )
    assert [(m["operation"], m["quantity"]) for m in movements.json()["data"]][2:] == [
        ("reserve", 4),
        ("add", 10),
    ]
    assert sorted(m["operation"] for m in movements.json()["data"][:2]) == ["add", "subtract"]
