"""`GET /api/v1/{tenantId}/events`: relayed events after a cursor, tenant-scoped, for readers."""

from __future__ import annotations

import httpx

from shelfkeeper.db.database import Database
from shelfkeeper.event import relay
from tests.conftest import TenantWorld
from tests.event.factories import events_url, poll, record

PROBLEMS = "https://shelfkeeper.dev/problems/"


async def test_lists_relayed_events_as_cloudevents_after_the_cursor(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    for number in range(3):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    await record(database, tenant=world.b, subject="inventory/b")
    assert await relay.relay_tenant(database, tenant_id=world.a)
    assert await relay.relay_tenant(database, tenant_id=world.b)
    await record(database, tenant=world.a, subject="inventory/unrelayed")
    viewer = world.headers(world.a, "viewer")

    first = await poll(client, tenant=world.a, headers=viewer)
    rest = await poll(client, tenant=world.a, headers=viewer, after=1)
    beyond = await poll(client, tenant=world.a, headers=viewer, after=3)

    assert [event["subject"] for event in first["data"]] == [
        "inventory/0",
        "inventory/1",
        "inventory/2",
    ]
    envelope = first["data"][0]
    assert set(envelope) == {
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "datacontenttype",
        "data",
        "tenantid",
        "sequence",
    }
    assert envelope["specversion"] == "1.0"
    assert envelope["source"] == f"/shelfkeeper/tenants/{world.a}"
    assert envelope["type"] == "InventoryUpdated"
    assert envelope["datacontenttype"] == "application/json"
    assert envelope["tenantid"] == world.a
    assert envelope["sequence"] == 1
    assert first["next_cursor"] == 3
    assert [event["sequence"] for event in rest["data"]] == [2, 3]
    assert beyond == {"data": [], "next_cursor": 3}


async def test_limit_pages_through_events(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    for number in range(5):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    assert await relay.relay_tenant(database, tenant_id=world.a)

    response = await client.get(
        events_url(world.a), params={"after": 1, "limit": 2}, headers=world.headers(world.a)
    )
    too_many = await client.get(
        events_url(world.a), params={"limit": 201}, headers=world.headers(world.a)
    )
    negative = await client.get(
        events_url(world.a), params={"after": -1}, headers=world.headers(world.a)
    )

    assert response.status_code == 200
    assert [event["sequence"] for event in response.json()["data"]] == [2, 3]
    assert response.json()["next_cursor"] == 3
    assert too_many.status_code == 422
    assert negative.status_code == 422


async def test_every_tenant_role_reads_events(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    await record(database, tenant=world.a)
    assert await relay.relay_tenant(database, tenant_id=world.a)

    for role in ("viewer", "clerk", "admin"):
        page = await poll(client, tenant=world.a, headers=world.headers(world.a, role))
        assert len(page["data"]) == 1


async def test_anonymous_and_other_tenants_are_refused(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    await record(database, tenant=world.a)
    assert await relay.relay_tenant(database, tenant_id=world.a)

    anonymous = await client.get(events_url(world.a))
    other_tenant = await client.get(events_url(world.a), headers=world.headers(world.b))
    platform = await client.get(events_url(world.a), headers=world.platform)
    own = await poll(client, tenant=world.b, headers=world.headers(world.b, "viewer"))

    assert anonymous.status_code == 401
    assert other_tenant.status_code == 403
    assert other_tenant.json()["type"] == PROBLEMS + "tenant-mismatch"
    assert platform.status_code == 403
    assert own == {"data": [], "next_cursor": 0}
