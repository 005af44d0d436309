"""A suspended tenant's webhook deliveries are held: they stay pending and unattempted (so
they count toward no endpoint's disabling) and go out once the tenant is reactivated.
End to end with the relay and the dispatcher running and real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shelfkeeper.app import create_app
from shelfkeeper.config import Settings
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database
from shelfkeeper.event import relay, webhook_dispatcher, webhook_service
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from shelfkeeper.kit import outbound
from tests.conftest import TenantWorld
from tests.event.test_webhook import Background, hook_settings, record
from tests.event.webhook_receiver import PUBLIC_URL, Receiver, create_webhook
from tests.tenant.factories import tenant_url


@pytest.fixture
async def hook_client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(hook_settings(settings), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shelfkeeper.test") as c:
        yield c


@pytest.fixture
async def background(database: Database, settings: Settings) -> AsyncIterator[Background]:
    running = Background(database, settings)
    yield running
    await running.close()


async def set_status(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, status: str
) -> None:
    response = await client.patch(
        tenant_url(tenant), json={"status": status}, headers=world.platform
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status


async def delivery_rows(owner: Connection, *, tenant: str) -> list[dict[str, Any]]:
    rows = await owner.fetch(
        "SELECT status, attempts FROM webhook_delivery WHERE tenant_id = $1 "
        "ORDER BY event_sequence",
        tenant,
    )
    return [dict(row) for row in rows]


async def endpoint_row(owner: Connection, *, tenant: str) -> dict[str, Any]:
    row = await owner.fetchrow(
        "SELECT enabled, consecutive_failures FROM webhook_endpoint WHERE tenant_id = $1",
        tenant,
    )
    assert row is not None
    return dict(row)


async def test_a_suspended_tenant_s_deliveries_wait_and_go_out_after_reactivation(
    hook_client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    background: Background,
    owner_connection: Connection,
) -> None:
    async with Receiver() as held, Receiver() as other:
        await create_webhook(hook_client, world, tenant=world.a, url=held.url())
        await create_webhook(hook_client, world, tenant=world.b, url=other.url())
        # one failure would disable an endpoint: a held delivery must not count as one
        background.start(webhook_disable_after_failures=1, relay_poll_interval_seconds=0.2)
        await set_status(hook_client, world, tenant=world.a, status="suspended")

        await record(database, tenant=world.a, subject="s/1", marker="a1")
        await record(database, tenant=world.a, subject="s/2", marker="a2")
        async with asyncio.timeout(20):  # the relay numbered a's events: deliveries exist
            while True:
                if len(await delivery_rows(owner_connection, tenant=world.a)) == 2:
                    break
                await asyncio.sleep(0.05)
        await record(database, tenant=world.b, subject="s/1", marker="b1")
        await other.wait_for(1)  # the dispatcher runs, and serves the active tenant
        await asyncio.sleep(1.0)  # several scans (0.2 s) and polls (0.05 s) later

        assert held.requests == []
        assert await delivery_rows(owner_connection, tenant=world.a) == [
            {"status": "pending", "attempts": 0},
            {"status": "pending", "attempts": 0},
        ]
        assert await endpoint_row(owner_connection, tenant=world.a) == {
            "enabled": True,
            "consecutive_failures": 0,
        }

        await set_status(hook_client, world, tenant=world.a, status="active")
        received = await held.wait_for(2)

    assert sorted(request.event["data"]["marker"] for request in received) == ["a1", "a2"]
    async with asyncio.timeout(10):
        while True:
            rows = await delivery_rows(owner_connection, tenant=world.a)
            if {row["status"] for row in rows} == {"succeeded"}:
                break
            await asyncio.sleep(0.05)
    assert [request.event["data"]["marker"] for request in other.requests] == ["b1"]


async def test_the_scan_skips_a_suspended_tenant_and_a_woken_dispatcher_leases_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    settings: Settings,
    owner_connection: Connection,
) -> None:
    await create_webhook(client, world, tenant=world.a, url=PUBLIC_URL)
    async with database.tenant_transaction(world.a) as db:
        await event_service.record(
            db, tenant_id=world.a, type=EventType.ORDER_PLACED, subject="held", data={}
        )
    assert await relay.relay_tenant(database, tenant_id=world.a)
    await set_status(client, world, tenant=world.a, status="suspended")

    async def due() -> list[str]:
        async with database.tenant_transaction(PLATFORM_SCOPE) as db:
            return await webhook_service.due_tenants(db)

    suspended_due = await due()
    async with webhook_dispatcher.new_client(settings) as http:
        dispatcher = webhook_dispatcher.Dispatcher(
            database, hook_settings(settings), client=http, resolver=outbound.system_resolver
        )
        dispatcher.wake(world.a)  # as the relay does when it numbers the tenant's events
        leased = await dispatcher.dispatch_tenant(world.a, limit=10)
        busy = set(dispatcher.busy)
    await set_status(client, world, tenant=world.a, status="active")
    active_due = await due()

    assert world.a not in suspended_due
    assert (leased, world.a in busy) == (0, False)
    assert world.a in active_due
    assert await delivery_rows(owner_connection, tenant=world.a) == [
        {"status": "pending", "attempts": 0}
    ]
