"""The housekeeping pass purges expired idempotency keys of every tenant, and only those."""

from __future__ import annotations

import httpx

from shelfkeeper import maintenance
from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld


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
