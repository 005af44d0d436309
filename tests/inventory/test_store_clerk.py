"""Store clerks: a token's `location_ids` claim limits where its holder may change stock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from shelfkeeper.auth.dependencies import principal_from_claims
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection
from shelfkeeper.kit.problems import Unauthorized
from tests.conftest import JWT_SECRET, TenantWorld, bearer
from tests.inventory.event_factories import (
    alerts_url,
    events_of,
    item_stock_url,
    level_url,
    store_clerk,
)
from tests.inventory.factories import (
    adjustments_url,
    inventory_rows,
    item_url,
    movements_url,
    stock_url,
    transfers_url,
)
from tests.inventory.reservation_factories import (
    hold,
    place,
    reservation_rows,
    reservation_url,
    stocked_item,
)

PROBLEMS = "https://shelfkeeper.dev/problems/"


async def everything(owner: Connection, *, tenant: str) -> dict[str, Any]:
    """Every inventory, reservation and event row of the tenant (equal: nothing written)."""
    return {
        **await inventory_rows(owner, tenant=tenant),
        **await reservation_rows(owner, tenant=tenant),
        "event": await events_of(owner, tenant=tenant),
    }


def assert_forbidden(response: httpx.Response, *outside: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["type"] == PROBLEMS + "forbidden"
    assert response.json()["location_ids"] == sorted(outside)


async def test_a_store_clerk_changes_stock_only_at_its_locations(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    settings: Settings,
) -> None:
    store = await place(client, world, tenant=world.a, code="STORE")
    warehouse = await place(client, world, tenant=world.a, code="WH")
    item_id, _ = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={store: 5, warehouse: 5}
    )
    clerk = store_clerk(settings, tenant=world.a, location_ids=[store])
    before = await everything(owner_connection, tenant=world.a)

    refused = await client.patch(
        stock_url(world.a, item_id),
        json={"operation": "subtract", "quantity": 1, "location_id": warehouse},
        headers=clerk,
    )
    threshold = await client.patch(
        level_url(world.a, item_id, warehouse), json={"low_stock_threshold": 9}, headers=clerk
    )

    assert_forbidden(refused, warehouse)
    assert_forbidden(threshold, warehouse)
    assert await everything(owner_connection, tenant=world.a) == before

    allowed = await client.patch(
        stock_url(world.a, item_id),
        json={"operation": "subtract", "quantity": 1, "location_id": store},
        headers=clerk,
    )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["level"]["on_hand"] == 4
    assert allowed.json()["movement"]["actor"] == "user:store-clerk"
    threshold = await client.patch(
        level_url(world.a, item_id, store), json={"low_stock_threshold": 9}, headers=clerk
    )
    assert threshold.status_code == 200, threshold.text


async def test_a_batch_with_one_line_elsewhere_is_refused_whole(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    settings: Settings,
) -> None:
    store = await place(client, world, tenant=world.a, code="STORE")
    warehouse = await place(client, world, tenant=world.a, code="WH")
    item_id, _ = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={store: 5, warehouse: 5}
    )
    clerk = store_clerk(settings, tenant=world.a, location_ids=[store])
    before = await everything(owner_connection, tenant=world.a)

    def line(location_id: str) -> dict[str, Any]:
        return {"item_id": item_id, "operation": "add", "quantity": 1, "location_id": location_id}

    refused = await client.post(
        adjustments_url(world.a),
        json={"adjustments": [line(store), line(warehouse), line(store)]},
        headers=clerk,
    )

    assert_forbidden(refused, warehouse)
    assert await everything(owner_connection, tenant=world.a) == before
    allowed = await client.post(
        adjustments_url(world.a), json={"adjustments": [line(store), line(store)]}, headers=clerk
    )
    assert allowed.status_code == 200, allowed.text


async def test_a_transfer_needs_both_ends(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    settings: Settings,
) -> None:
    store = await place(client, world, tenant=world.a, code="STORE")
    back_room = await place(client, world, tenant=world.a, code="BACK")
    warehouse = await place(client, world, tenant=world.a, code="WH")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={store: 5, warehouse: 5})
    clerk = store_clerk(settings, tenant=world.a, location_ids=[store, back_room])
    before = await everything(owner_connection, tenant=world.a)

    def transfer(source: str, target: str) -> dict[str, Any]:
        return {"sku": "TOWEL", "from_location_id": source, "to_location_id": target, "quantity": 1}

    outgoing = await client.post(
        transfers_url(world.a), json=transfer(store, warehouse), headers=clerk
    )
    incoming = await client.post(
        transfers_url(world.a), json=transfer(warehouse, store), headers=clerk
    )

    assert_forbidden(outgoing, warehouse)
    assert_forbidden(incoming, warehouse)
    assert await everything(owner_connection, tenant=world.a) == before
    inside = await client.post(
        transfers_url(world.a), json=transfer(store, back_room), headers=clerk
    )
    assert inside.status_code == 201, inside.text


async def test_a_store_clerk_holds_stock_only_at_its_locations(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    settings: Settings,
) -> None:
    store = await place(client, world, tenant=world.a, code="STORE", priority=0)
    warehouse = await place(client, world, tenant=world.a, code="WH", priority=10)
    await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={store: 2, warehouse: 50}
    )
    clerk = store_clerk(settings, tenant=world.a, location_ids=[store])
    before = await everything(owner_connection, tenant=world.a)

    named = await hold(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 1, "location_id": warehouse}],
        headers=clerk,
    )
    short = await hold(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 3}], headers=clerk
    )

    assert_forbidden(named, warehouse)
    assert short.status_code == 409, short.text
    assert short.json()["lines"] == [
        {
            "index": 0,
            "variant_id": short.json()["lines"][0]["variant_id"],
            "requested": 3,
            "available": 2,
        }
    ]
    assert await everything(owner_connection, tenant=world.a) == before

    # Placed at the store although the warehouse has more and a higher priority.
    placed = await hold(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 2}], headers=clerk
    )
    assert placed.status_code == 201, placed.text
    assert [line["location_id"] for line in placed.json()["lines"]] == [store]
    extended = await client.post(
        reservation_url(world.a, placed.json()["id"]) + "/extend",
        json={"ttl_seconds": 60},
        headers=clerk,
    )
    assert extended.status_code == 200, extended.text
    released = await client.post(
        reservation_url(world.a, placed.json()["id"]) + "/release", headers=clerk
    )
    assert released.status_code == 200, released.text


async def test_a_store_clerk_cannot_release_or_extend_a_hold_elsewhere(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    settings: Settings,
) -> None:
    store = await place(client, world, tenant=world.a, code="STORE")
    warehouse = await place(client, world, tenant=world.a, code="WH")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={store: 1, warehouse: 5})
    response = await hold(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "TOWEL", "quantity": 1, "location_id": store},
            {"sku": "TOWEL", "quantity": 2, "location_id": warehouse},
        ],
    )
    assert response.status_code == 201, response.text
    reservation_id = response.json()["id"]
    clerk = store_clerk(settings, tenant=world.a, location_ids=[store])
    before = await everything(owner_connection, tenant=world.a)

    released = await client.post(
        reservation_url(world.a, reservation_id) + "/release", headers=clerk
    )
    extended = await client.post(
        reservation_url(world.a, reservation_id) + "/extend",
        json={"ttl_seconds": 60},
        headers=clerk,
    )

    assert_forbidden(released, warehouse)
    assert_forbidden(extended, warehouse)
    assert await everything(owner_connection, tenant=world.a) == before


async def test_a_store_clerk_reads_everything(
    client: httpx.AsyncClient, world: TenantWorld, settings: Settings
) -> None:
    store = await place(client, world, tenant=world.a, code="STORE")
    warehouse = await place(client, world, tenant=world.a, code="WH")
    item_id, _ = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={warehouse: 5}
    )
    clerk = store_clerk(settings, tenant=world.a, location_ids=[store])

    for url in (
        item_url(world.a, item_id),
        movements_url(world.a, item_id),
        item_stock_url(world.a, item_id),
        alerts_url(world.a),
    ):
        response = await client.get(url, headers=clerk)
        assert response.status_code == 200, (url, response.text)
    stock = await client.get(item_stock_url(world.a, item_id), headers=clerk)
    assert [level["location_id"] for level in stock.json()["levels"]] == [warehouse]


async def test_an_empty_claim_allows_no_location_and_a_viewer_stays_a_viewer(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    settings: Settings,
) -> None:
    store = await place(client, world, tenant=world.a, code="STORE")
    item_id, _ = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={store: 5})
    before = await everything(owner_connection, tenant=world.a)
    body = {"operation": "add", "quantity": 1, "location_id": store}

    nowhere = await client.patch(
        stock_url(world.a, item_id),
        json=body,
        headers=store_clerk(settings, tenant=world.a, location_ids=[]),
    )
    viewer = await client.patch(
        stock_url(world.a, item_id),
        json=body,
        headers=store_clerk(settings, tenant=world.a, location_ids=[store], role="viewer"),
    )

    assert_forbidden(nowhere, store)
    assert viewer.status_code == 403
    assert await everything(owner_connection, tenant=world.a) == before


def signed(settings: Settings, tenant: str, **claims: Any) -> dict[str, str]:
    now = datetime.now(UTC)
    payload = {
        "sub": "store-clerk",
        "tenant_id": tenant,
        "roles": ["clerk"],
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **claims,
    }
    return bearer(jwt.encode(payload, JWT_SECRET, algorithm="HS256"))


@pytest.mark.parametrize(
    "claim", ["3f2504e0-4f89-11d3-9a0c-0305e82c3301", ["not-a-uuid"], [1], {"a": 1}, [None]]
)
async def test_a_malformed_location_claim_is_401(
    client: httpx.AsyncClient, world: TenantWorld, settings: Settings, claim: Any
) -> None:
    response = await client.get(
        alerts_url(world.a), headers=signed(settings, world.a, location_ids=claim)
    )

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_null_claim_and_no_claim_mean_anywhere(
    client: httpx.AsyncClient, world: TenantWorld, settings: Settings
) -> None:
    store = await place(client, world, tenant=world.a, code="STORE")
    item_id, _ = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={store: 5})

    for headers in (signed(settings, world.a, location_ids=None), signed(settings, world.a)):
        response = await client.patch(
            stock_url(world.a, item_id),
            json={"operation": "add", "quantity": 1, "location_id": store},
            headers=headers,
        )
        assert response.status_code == 200, response.text


def test_the_principal_carries_the_claimed_locations() -> None:
    claims = {"sub": "s", "tenant_id": "acme", "roles": ["clerk"]}
    location = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"

    unrestricted = principal_from_claims(claims)
    restricted = principal_from_claims(claims | {"location_ids": [location, location.upper()]})

    assert unrestricted.location_ids is None
    assert restricted.location_ids is not None
    assert [str(location_id) for location_id in restricted.location_ids] == [location]
    with pytest.raises(Unauthorized):
        principal_from_claims(claims | {"location_ids": "everywhere"})
