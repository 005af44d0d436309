"""Unpaid orders expire after the tenant's `unpaid_order_expiry_minutes` (off by default)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from shelfkeeper import maintenance
from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.order.after_sale import towel_world
from tests.order.factories import assert_ledger_sound, payments_url, placed, read_order

TOWELS = [{"sku": "TOWEL", "quantity": 3, "unit_price": "10.00"}]


async def set_expiry(client: httpx.AsyncClient, world: TenantWorld, minutes: int | None) -> None:
    response = await client.patch(
        f"/api/v1/tenants/{world.a}",
        json={"settings": {"unpaid_order_expiry_minutes": minutes}},
        headers=world.platform,
    )
    assert response.status_code == 200, response.text


async def test_unpaid_pending_orders_are_canceled_after_the_setting(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    await towel_world(client, world, tenant=world.a)
    unpaid = await placed(client, world, tenant=world.a, lines=TOWELS)
    paid = await placed(client, world, tenant=world.a, lines=TOWELS)
    payment = await client.post(
        payments_url(world.a, paid["id"]),
        json={"amount": "1.00"},
        headers=world.headers(world.a, "clerk"),
    )
    assert payment.status_code == 201
    now = datetime.now(UTC)

    off = await maintenance.run_once(database, now=now + timedelta(days=1))
    assert (await read_order(client, world, tenant=world.a, order_id=unpaid["id"]))[
        "status"
    ] == "pending"

    await set_expiry(client, world, 30)
    early = await maintenance.run_once(database, now=now + timedelta(minutes=29))
    late = await maintenance.run_once(database, now=now + timedelta(minutes=31))

    assert off.unpaid_orders_canceled == 0
    assert early.unpaid_orders_canceled == 0
    assert late.unpaid_orders_canceled == 1
    canceled = await read_order(client, world, tenant=world.a, order_id=unpaid["id"])
    assert canceled["status"] == "canceled"
    assert canceled["status_history"][-1]["actor"] == "system"
    kept = await read_order(client, world, tenant=world.a, order_id=paid["id"])
    assert kept["status"] == "pending"
    reserved = await owner_connection.fetchval(
        "SELECT sum(reserved) FROM stock_level WHERE tenant_id = $1", world.a
    )
    assert reserved == 3
    assert (
        await owner_connection.fetchval(
            "SELECT count(*) FROM event WHERE tenant_id = $1 AND type = 'OrderCancelled'",
            world.a,
        )
        == 1
    )
    await assert_ledger_sound(database, world.a)


async def test_the_setting_is_validated(client: httpx.AsyncClient, world: TenantWorld) -> None:
    for value in (0, -5, "30", 10**9):
        response = await client.patch(
            f"/api/v1/tenants/{world.a}",
            json={"settings": {"unpaid_order_expiry_minutes": value}},
            headers=world.platform,
        )
        assert response.status_code == 422, (value, response.text)
