"""Low-stock thresholds and alerts: one `InventoryLowStock` per downward crossing, re-armed
only above the threshold; the threshold falls back level → item → tenant; the alerts list."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.inventory.ledger import find_drift
from tests.conftest import TenantWorld
from tests.inventory.event_factories import (
    LOW_STOCK,
    UPDATED,
    alerts_url,
    event_count,
    events_of,
    level_url,
    set_level_threshold,
    set_tenant_threshold,
)
from tests.inventory.factories import (
    adjust,
    create_item,
    inventory_rows,
    item_url,
    items_url,
    new_location,
    stock,
)

PROBLEMS = "https://shelfkeeper.dev/problems/"


async def stocked(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    location_id: str,
    on_hand: int,
    sku: str = "TOWEL",
    name: str | None = None,
    **fields: Any,
) -> tuple[str, str]:
    """An item with `on_hand` units at the location: (item id, variant id)."""
    item = await create_item(client, world, tenant=tenant, sku=sku, name=name or sku, **fields)
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="add",
        quantity=on_hand,
        location_id=location_id,
    )
    return item["id"], item["variants"][0]["id"]


async def change(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    item_id: str,
    location_id: str,
    operation: str,
    quantity: int,
) -> dict[str, Any]:
    return await stock(
        client,
        world,
        tenant=tenant,
        item_id=item_id,
        operation=operation,
        quantity=quantity,
        location_id=location_id,
    )


async def available_levels_of_low_stock_events(owner: Connection, *, tenant: str) -> list[int]:
    return [
        event["data"]["available"]
        for event in await events_of(owner, tenant=tenant, type=LOW_STOCK)
    ]


async def no_drift(database: Database, tenant: str) -> None:
    async with database.tenant_transaction(tenant) as db:
        assert await find_drift(db, tenant_id=tenant) == []


async def test_a_crossing_records_one_event_however_many_changes_stay_below(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item_id, variant_id = await stocked(
        client, world, tenant=world.a, location_id=location, on_hand=20, low_stock_threshold=15
    )

    await change(
        client,
        world,
        tenant=world.a,
        item_id=item_id,
        location_id=location,
        operation="subtract",
        quantity=5,
    )
    for _ in range(10):
        await change(
            client,
            world,
            tenant=world.a,
            item_id=item_id,
            location_id=location,
            operation="subtract",
            quantity=1,
        )

    assert await events_of(owner_connection, tenant=world.a, type=LOW_STOCK) == [
        {
            "type": LOW_STOCK,
            "subject": f"inventory/{item_id}",
            "data": {
                "item_id": item_id,
                "variant_id": variant_id,
                "sku": "TOWEL",
                "location_id": location,
                "on_hand": 15,
                "reserved": 0,
                "available": 15,
                "threshold": 15,
                "version": 2,
            },
        }
    ]
    assert await event_count(owner_connection, tenant=world.a, type=UPDATED) == 12
    assert await event_count(owner_connection, tenant=world.b) == 0


async def test_a_level_is_re_armed_only_above_its_threshold(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item_id, _ = await stocked(
        client, world, tenant=world.a, location_id=location, on_hand=12, low_stock_threshold=10
    )
    steps = [
        ("subtract", 4),  # 8: crossing
        ("add", 2),  # 10: at the threshold, still low: not re-armed
        ("subtract", 1),  # 9: no new crossing
        ("add", 2),  # 11: above, re-armed
        ("subtract", 1),  # 10: crossing again
    ]
    for operation, quantity in steps:
        await change(
            client,
            world,
            tenant=world.a,
            item_id=item_id,
            location_id=location,
            operation=operation,
            quantity=quantity,
        )

    low = await events_of(owner_connection, tenant=world.a, type=LOW_STOCK)
    assert [(event["data"]["available"], event["data"]["version"]) for event in low] == [
        (8, 2),
        (10, 6),
    ]


async def test_oscillating_around_the_threshold_records_one_event_per_downward_crossing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item_id, _ = await stocked(
        client, world, tenant=world.a, location_id=location, on_hand=6, low_stock_threshold=5
    )
    # Available: 6 → 5 ↓ → 6 → 5 ↓ → 4 → 5 → 6 → 7 → 4 ↓ → 5 → 3 → 6 → 5 ↓
    steps = [
        ("reserve", 1),
        ("release", 1),
        ("subtract", 1),
        ("subtract", 1),
        ("add", 1),
        ("add", 1),
        ("add", 1),
        ("reserve", 3),
        ("release", 1),
        ("reserve", 2),
        ("release", 3),
        ("subtract", 1),
    ]
    for operation, quantity in steps:
        await change(
            client,
            world,
            tenant=world.a,
            item_id=item_id,
            location_id=location,
            operation=operation,
            quantity=quantity,
        )

    assert await available_levels_of_low_stock_events(owner_connection, tenant=world.a) == [
        5,
        5,
        4,
        5,
    ]
    assert await event_count(owner_connection, tenant=world.a, type=UPDATED) == 1 + len(steps)


async def test_the_threshold_falls_back_from_level_to_item_to_tenant(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await set_tenant_threshold(client, world, tenant=world.a, threshold=10)
    location = await new_location(client, world, tenant=world.a)
    # The tenant's 10 applies: created at 8, low from the start (a crossing at version 1).
    tenant_item, _ = await stocked(
        client, world, tenant=world.a, location_id=location, on_hand=8, sku="BY-TENANT"
    )
    # The item's 3 overrides the tenant's 10: not low.
    item_item, _ = await stocked(
        client,
        world,
        tenant=world.a,
        location_id=location,
        on_hand=8,
        sku="BY-ITEM",
        low_stock_threshold=3,
    )
    # The level's 8 overrides the item's 3: setting it is a crossing.
    level_item, _ = await stocked(
        client,
        world,
        tenant=world.a,
        location_id=location,
        on_hand=8,
        sku="BY-LEVEL",
        low_stock_threshold=3,
    )
    response = await set_level_threshold(
        client, world, tenant=world.a, item_id=level_item, location_id=location, threshold=8
    )
    assert response.status_code == 200, response.text
    assert response.json()["threshold"] == 8
    assert response.json()["threshold_source"] == "level"
    assert response.json()["low_stock"] is True

    low = await events_of(owner_connection, tenant=world.a, type=LOW_STOCK)
    assert [(event["data"]["sku"], event["data"]["threshold"]) for event in low] == [
        ("BY-TENANT", 10),
        ("BY-LEVEL", 8),
    ]
    alerts = await client.get(alerts_url(world.a), headers=world.headers(world.a, "viewer"))
    assert alerts.status_code == 200, alerts.text
    assert [
        (alert["item"]["id"], alert["threshold"], alert["threshold_source"])
        for alert in alerts.json()["data"]
    ] == [(level_item, 8, "level"), (tenant_item, 10, "tenant")]
    assert item_item not in {alert["item"]["id"] for alert in alerts.json()["data"]}

    # Cleared, the level falls back to its item's 3: above it, so re-armed and not listed.
    cleared = await set_level_threshold(
        client, world, tenant=world.a, item_id=level_item, location_id=location, threshold=None
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["threshold"] == 3
    assert cleared.json()["threshold_source"] == "item"
    assert cleared.json()["low_stock"] is False
    assert cleared.json()["since"] is None
    alerts = await client.get(alerts_url(world.a), headers=world.headers(world.a, "viewer"))
    assert [alert["item"]["id"] for alert in alerts.json()["data"]] == [tenant_item]
    assert await event_count(owner_connection, tenant=world.a, type=LOW_STOCK) == 2


async def test_a_level_without_any_threshold_never_alerts(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item_id, _ = await stocked(client, world, tenant=world.a, location_id=location, on_hand=3)

    await change(
        client,
        world,
        tenant=world.a,
        item_id=item_id,
        location_id=location,
        operation="subtract",
        quantity=3,
    )

    assert await event_count(owner_connection, tenant=world.a, type=LOW_STOCK) == 0
    alerts = await client.get(alerts_url(world.a), headers=world.headers(world.a, "viewer"))
    assert alerts.json() == {"data": [], "next_cursor": None}


async def test_concurrent_changes_crossing_the_threshold_record_exactly_one_event(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item_id, _ = await stocked(
        client, world, tenant=world.a, location_id=location, on_hand=100, low_stock_threshold=50
    )

    responses = await asyncio.gather(
        *(
            adjust(
                client,
                world,
                tenant=world.a,
                item_id=item_id,
                operation="subtract",
                quantity=1,
                location_id=location,
            )
            for _ in range(60)
        )
    )

    assert Counter(response.status_code for response in responses) == {200: 60}
    low = await events_of(owner_connection, tenant=world.a, type=LOW_STOCK)
    assert [(event["data"]["available"], event["data"]["version"]) for event in low] == [(50, 51)]
    assert await event_count(owner_connection, tenant=world.a, type=UPDATED) == 61
    await no_drift(database, world.a)


async def test_an_item_threshold_change_that_puts_levels_below_is_a_crossing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await new_location(client, world, tenant=world.a, code="N")
    south = await new_location(client, world, tenant=world.a, code="S")
    item_id, variant_id = await stocked(client, world, tenant=world.a, location_id=north, on_hand=4)
    await change(
        client,
        world,
        tenant=world.a,
        item_id=item_id,
        location_id=south,
        operation="add",
        quantity=9,
    )

    updated = await client.put(
        item_url(world.a, item_id),
        json={"low_stock_threshold": 5},
        headers=world.headers(world.a, "clerk"),
    )
    assert updated.status_code == 200, updated.text
    again = await client.put(
        item_url(world.a, item_id),
        json={"low_stock_threshold": 6},
        headers=world.headers(world.a, "clerk"),
    )
    assert again.status_code == 200, again.text

    low = await events_of(owner_connection, tenant=world.a, type=LOW_STOCK)
    assert [(event["data"]["location_id"], event["data"]["threshold"]) for event in low] == [
        (north, 5)
    ]
    assert low[0]["data"]["version"] == 1
    alerts = await client.get(alerts_url(world.a), headers=world.headers(world.a, "viewer"))
    [alert] = alerts.json()["data"]
    assert alert["variant_id"] == variant_id
    assert alert["location_id"] == north
    assert alert["threshold"] == 6
    assert alert["threshold_source"] == "item"
    assert alert["since_version"] == 1


async def test_a_tenant_default_change_is_recorded_at_the_level_s_next_change(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item_id, _ = await stocked(client, world, tenant=world.a, location_id=location, on_hand=8)

    await set_tenant_threshold(client, world, tenant=world.a, threshold=10)
    listed = await client.get(alerts_url(world.a), headers=world.headers(world.a, "viewer"))
    [alert] = listed.json()["data"]
    assert (alert["threshold"], alert["threshold_source"], alert["low_stock"]) == (
        10,
        "tenant",
        True,
    )
    assert (alert["since"], alert["since_version"]) == (None, None)
    assert await event_count(owner_connection, tenant=world.a, type=LOW_STOCK) == 0

    await change(
        client,
        world,
        tenant=world.a,
        item_id=item_id,
        location_id=location,
        operation="subtract",
        quantity=1,
    )

    assert await available_levels_of_low_stock_events(owner_connection, tenant=world.a) == [7]
    listed = await client.get(alerts_url(world.a), headers=world.headers(world.a, "viewer"))
    [alert] = listed.json()["data"]
    assert alert["since_version"] == 2
    assert alert["since"] is not None


async def test_the_alerts_list_pages_by_sku_and_filters_by_location(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await new_location(client, world, tenant=world.a, code="N")
    south = await new_location(client, world, tenant=world.a, code="S")
    await set_tenant_threshold(client, world, tenant=world.a, threshold=5)
    bravo, bravo_variant = await stocked(
        client, world, tenant=world.a, location_id=north, on_hand=2, sku="BRAVO", name="Bravo"
    )
    alpha, _ = await stocked(
        client, world, tenant=world.a, location_id=south, on_hand=5, sku="ALPHA", name="Alpha"
    )
    await stocked(client, world, tenant=world.a, location_id=north, on_hand=6, sku="CHARLIE")
    await change(
        client, world, tenant=world.a, item_id=bravo, location_id=south, operation="add", quantity=1
    )
    await change(
        client,
        world,
        tenant=world.a,
        item_id=bravo,
        location_id=south,
        operation="reserve",
        quantity=1,
    )

    pages: list[list[tuple[str, str]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get(
            alerts_url(world.a), params=params, headers=world.headers(world.a, "viewer")
        )
        assert page.status_code == 200, page.text
        pages.append([(alert["sku"], alert["location_id"]) for alert in page.json()["data"]])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    by_location = sorted([north, south])
    assert pages == [[("ALPHA", south), ("BRAVO", by_location[0])], [("BRAVO", by_location[1])]]

    at_north = await client.get(
        alerts_url(world.a),
        params={"location_id": north, "sort": "-sku"},
        headers=world.headers(world.a, "viewer"),
    )
    assert at_north.json()["data"] == [
        {
            "variant_id": bravo_variant,
            "location_id": north,
            "on_hand": 2,
            "reserved": 0,
            "available": 2,
            "low_stock_threshold": None,
            "version": 1,
            "sku": "BRAVO",
            "item": {"id": bravo, "sku": "BRAVO", "name": "Bravo"},
            "threshold": 5,
            "threshold_source": "tenant",
            "low_stock": True,
            "since": at_north.json()["data"][0]["since"],
            "since_version": 1,
        }
    ]
    assert at_north.json()["data"][0]["since"] is not None
    assert alpha not in {alert["item"]["id"] for alert in at_north.json()["data"]}

    low_items = await client.get(
        items_url(world.a), params={"low_stock": "true"}, headers=world.headers(world.a, "viewer")
    )
    assert sorted(item["sku"] for item in low_items.json()["data"]) == ["ALPHA", "BRAVO"]


async def test_the_alerts_list_refuses_strangers_and_bad_cursors(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    assert (await client.get(alerts_url(world.a))).status_code == 401
    other = await client.get(alerts_url(world.a), headers=world.headers(world.b, "admin"))
    assert other.status_code == 403
    assert other.json()["type"] == PROBLEMS + "tenant-mismatch"
    bad_sort = await client.get(
        alerts_url(world.a), params={"sort": "name"}, headers=world.headers(world.a, "viewer")
    )
    assert bad_sort.status_code == 422
    bad_cursor = await client.get(
        alerts_url(world.a), params={"cursor": "nope"}, headers=world.headers(world.a, "viewer")
    )
    assert bad_cursor.status_code == 422


async def test_setting_a_level_threshold_is_refused_without_writing_anything(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await new_location(client, world, tenant=world.a)
    elsewhere = await new_location(client, world, tenant=world.a, code="WH-2")
    item_id, _ = await stocked(client, world, tenant=world.a, location_id=location, on_hand=3)
    before = await inventory_rows(owner_connection, tenant=world.a)
    events_before = await events_of(owner_connection, tenant=world.a)
    body = {"low_stock_threshold": 5}
    url = level_url(world.a, item_id, location)

    anonymous = await client.patch(url, json=body)
    viewer = await client.patch(url, json=body, headers=world.headers(world.a, "viewer"))
    other_tenant = await client.patch(url, json=body, headers=world.headers(world.b, "admin"))
    no_level = await client.patch(
        level_url(world.a, item_id, elsewhere), json=body, headers=world.headers(world.a, "clerk")
    )
    no_item = await client.patch(
        level_url(world.a, location, location), json=body, headers=world.headers(world.a, "clerk")
    )
    stale = await client.patch(
        url, json=body, headers=world.headers(world.a, "clerk") | {"If-Match": '"7"'}
    )
    negative = await client.patch(
        url, json={"low_stock_threshold": -1}, headers=world.headers(world.a, "clerk")
    )
    missing = await client.patch(url, json={}, headers=world.headers(world.a, "clerk"))
    unknown_variant = await client.patch(
        url,
        json={"low_stock_threshold": 5, "variant_id": location},
        headers=world.headers(world.a, "clerk"),
    )

    assert [
        response.status_code
        for response in (
            anonymous,
            viewer,
            other_tenant,
            no_level,
            no_item,
            stale,
            negative,
            missing,
            unknown_variant,
        )
    ] == [401, 403, 403, 404, 404, 412, 422, 422, 422]
    assert no_level.json()["title"] == "Stock level not found"
    assert await inventory_rows(owner_connection, tenant=world.a) == before
    assert await events_of(owner_connection, tenant=world.a) == events_before

    current = await client.patch(
        url, json=body, headers=world.headers(world.a, "clerk") | {"If-Match": '"1"'}
    )
    assert current.status_code == 200, current.text
    assert current.json()["low_stock_threshold"] == 5
    assert current.json()["version"] == 1
    assert current.json()["since_version"] == 1
    assert await event_count(owner_connection, tenant=world.a, type=LOW_STOCK) == 1


async def test_the_ledger_stays_whole_with_alerts(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item_id, _ = await stocked(
        client, world, tenant=world.a, location_id=location, on_hand=10, low_stock_threshold=4
    )
    await set_level_threshold(
        client, world, tenant=world.a, item_id=item_id, location_id=location, threshold=9
    )
    for operation, quantity in [("subtract", 3), ("reserve", 2), ("set", 12), ("release", 1)]:
        await change(
            client,
            world,
            tenant=world.a,
            item_id=item_id,
            location_id=location,
            operation=operation,
            quantity=quantity,
        )

    await no_drift(database, world.a)
