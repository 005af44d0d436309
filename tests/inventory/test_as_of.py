"""Stock as of a past time, answered from the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.event_factories import item_stock_url
from tests.inventory.factories import stock
from tests.inventory.reservation_factories import place, stocked_item

PROBLEMS = "https://shelfkeeper.dev/problems/"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


async def backdate(
    owner: Connection, *, tenant: str, location_id: str, times: list[datetime]
) -> None:
    """Give the level's movements (in version order) these creation times."""
    for version, created_at in enumerate(times, start=1):
        await owner.execute(
            "UPDATE stock_movement SET created_at = $4 "
            "WHERE tenant_id = $1 AND location_id = $2::uuid AND level_version = $3",
            tenant,
            location_id,
            version,
            created_at,
        )


def level_states(body: dict[str, Any]) -> dict[str, tuple[int, int, int, int]]:
    """location id → (on_hand, reserved, available, version)."""
    return {
        level["location_id"]: (
            level["on_hand"],
            level["reserved"],
            level["available"],
            level["version"],
        )
        for level in body["levels"]
    }


async def test_stock_as_of_a_past_time_comes_from_the_ledger(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    item_id, variant_id = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 10, south: 4}
    )
    for operation, quantity in [("reserve", 3), ("subtract", 2), ("set", 20)]:
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item_id,
            operation=operation,
            quantity=quantity,
            location_id=north,
        )
    hour = timedelta(hours=1)
    await backdate(
        owner_connection,
        tenant=world.a,
        location_id=north,
        times=[T0, T0 + hour, T0 + 2 * hour, T0 + 3 * hour],
    )
    await backdate(owner_connection, tenant=world.a, location_id=south, times=[T0 + 2 * hour])
    headers = world.headers(world.a, "viewer")

    async def as_of(moment: datetime) -> dict[str, Any]:
        response = await client.get(
            item_stock_url(world.a, item_id), params={"as_of": moment.isoformat()}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    before = await as_of(T0 - timedelta(seconds=1))
    assert before == {"item_id": item_id, "as_of": "2026-03-01T08:59:59Z", "levels": []}
    assert level_states(await as_of(T0)) == {north: (10, 0, 10, 1)}
    assert level_states(await as_of(T0 + 90 * timedelta(minutes=1))) == {north: (10, 3, 7, 2)}
    assert level_states(await as_of(T0 + 2 * hour)) == {
        north: (8, 3, 5, 3),
        south: (4, 0, 4, 1),
    }
    latest = await as_of(T0 + 5 * hour)
    states = {north: (20, 3, 17, 4), south: (4, 0, 4, 1)}
    assert latest["levels"] == [
        {
            "variant_id": variant_id,
            "location_id": location_id,
            "on_hand": states[location_id][0],
            "reserved": states[location_id][1],
            "available": states[location_id][2],
            "low_stock_threshold": None,
            "version": states[location_id][3],
        }
        for location_id in sorted([north, south])
    ]
    in_another_zone = await client.get(
        item_stock_url(world.a, item_id),
        params={"as_of": "2026-03-01T10:30:00+01:00"},
        headers=headers,
    )
    assert level_states(in_another_zone.json()) == {north: (10, 0, 10, 1)}


async def test_movements_at_the_same_time_are_ordered_by_version(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    item_id, _ = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 10})
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item_id,
        operation="subtract",
        quantity=4,
        location_id=north,
    )
    await backdate(owner_connection, tenant=world.a, location_id=north, times=[T0, T0])

    response = await client.get(
        item_stock_url(world.a, item_id),
        params={"as_of": T0.isoformat()},
        headers=world.headers(world.a, "viewer"),
    )

    assert level_states(response.json()) == {north: (6, 0, 6, 2)}


async def test_without_as_of_the_levels_are_the_current_ones(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    item_id, variant_id = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 3, south: 1}
    )
    item = await client.get(
        f"/api/v1/{world.a}/inventory/{item_id}", headers=world.headers(world.a)
    )

    response = await client.get(item_stock_url(world.a, item_id), headers=world.headers(world.a))

    assert response.status_code == 200, response.text
    assert response.json() == {"item_id": item_id, "as_of": None, "levels": item.json()["stock"]}
    assert level_states(response.json()) == {north: (3, 0, 3, 1), south: (1, 0, 1, 1)}
    assert {level["variant_id"] for level in response.json()["levels"]} == {variant_id}


async def test_as_of_must_be_a_past_time_with_a_zone(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    item_id, _ = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 3})
    url = item_stock_url(world.a, item_id)
    headers = world.headers(world.a, "viewer")
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    responses = [
        await client.get(url, params={"as_of": value}, headers=headers)
        for value in (
            future,
            "2026-03-01T09:00:00",
            "yesterday",
            "2026-02-30T09:00:00Z",
            "1772355600",
        )
    ]

    assert [response.status_code for response in responses] == [422, 422, 422, 422, 422]
    assert all(response.json()["errors"][0]["loc"] == ["query", "as_of"] for response in responses)


async def test_stock_of_an_unknown_or_foreign_item_is_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    item_id, _ = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 3})

    anonymous = await client.get(item_stock_url(world.a, item_id))
    foreign = await client.get(item_stock_url(world.a, item_id), headers=world.headers(world.b))
    in_b = await client.get(item_stock_url(world.b, item_id), headers=world.headers(world.b))
    unknown = await client.get(item_stock_url(world.a, north), headers=world.headers(world.a))

    assert [r.status_code for r in (anonymous, foreign, in_b, unknown)] == [401, 403, 404, 404]
    assert foreign.json()["type"] == PROBLEMS + "tenant-mismatch"
