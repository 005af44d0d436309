"""The housekeeping pass purges expired idempotency keys of every tenant, and only those."""

from __future__ import annotations

from uuid import UUID

import httpx

from shelfkeeper import maintenance
from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.inventory.reservation_factories import expire, held, place, stocked_item, stored_status


async def post_with_key(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str, key: str
) -> None:
    response = await client.post(
        f"/api/v1/{tenant}/locations",
        json={"code": key, "name": key, "kind": "store"},
        headers=world.headers(tenant) | {"Idempotency-Key": key},
    )
    assert response.status_code == 201, response.text


async def test_a_pass_purges_expired_keys_of_every_tenant(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    for tenant in (world.a, world.b):
        await post_with_key(client, world, tenant, "old")
        await post_with_key(client, world, tenant, "fresh")
    await owner_connection.execute(
        "UPDATE idempotency_key SET expires_at = now() - interval '1 second' "
        "WHERE tenant_id = ANY($1::text[]) AND key = 'old'",
        [world.a, world.b],
    )

    report = await maintenance.run_once(database)

    remaining = await owner_connection.fetch(
        "SELECT tenant_id, key FROM idempotency_key WHERE tenant_id = ANY($1::text[]) "
        "ORDER BY tenant_id, key",
        [world.a, world.b],
    )
    assert [(row["tenant_id"], row["key"]) for row in remaining] == sorted(
        [(world.a, "fresh"), (world.b, "fresh")]
    )
    assert report.idempotency_keys_purged >= 2
    assert report.tenants >= 2


async def test_a_pass_expires_due_holds_and_releases_their_units(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    location = await place(client, world, tenant=world.a, code="WH")
    _, variant_id = await stocked_item(
        client, world, tenant=world.a, sku="MUG", on_hand={location: 10}
    )
    due = await held(
        client, world, tenant=world.a, lines=[{"variant_id": variant_id, "quantity": 4}]
    )
    current = await held(
        client, world, tenant=world.a, lines=[{"variant_id": variant_id, "quantity": 1}]
    )
    await expire(owner_connection, tenant=world.a, reservation_id=due["id"])

    report = await maintenance.run_once(database)

    assert report.holds_expired >= 1
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=due["id"]) == (
        "expired"
    )
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=current["id"]) == (
        "held"
    )
    level = await owner_connection.fetchrow(
        "SELECT on_hand, reserved FROM stock_level WHERE tenant_id = $1 AND variant_id = $2",
        world.a,
        UUID(variant_id),
    )
    assert level is not None
    assert (level["on_hand"], level["reserved"]) == (10, 1)
    reasons = await owner_connection.fetch(
        "SELECT operation, quantity FROM stock_movement "
        "WHERE tenant_id = $1 AND reason = 'expired'",
        world.a,
    )
    assert [(row["operation"], row["quantity"]) for row in reasons] == [("release", 4)]
