"""Work the service does by itself is audited too, as `system`: holds expired and unpaid
orders canceled by the housekeeping pass, and changes made by a signed provider callback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from shelfkeeper import maintenance
from shelfkeeper.db.database import Connection, Database
from tests.audit.factories import entries
from tests.conftest import TenantWorld
from tests.inventory.reservation_factories import expire, held, place, stocked_item
from tests.order.after_sale import new_secret, send_callback
from tests.order.factories import moved, placed


async def test_the_housekeeping_pass_audits_expired_holds_as_system(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    location = await place(client, world, tenant=world.a, code="JOB-WH")
    _, variant_id = await stocked_item(
        client, world, tenant=world.a, sku="JOB-MUG", on_hand={location: 5}
    )
    hold = await held(
        client, world, tenant=world.a, lines=[{"variant_id": variant_id, "quantity": 2}]
    )
    await expire(owner_connection, tenant=world.a, reservation_id=hold["id"])

    await maintenance.run_once(database)

    expired = [
        entry
        for entry in await entries(owner_connection, tenant=world.a)
        if entry["action"] == "expire"
    ]
    assert [(entry["entity_type"], entry["entity_id"]) for entry in expired] == [
        ("reservation", hold["id"])
    ]
    [entry] = expired
    assert (entry["actor"], entry["role"], entry["request_id"]) == ("system", None, None)
    assert (entry["before"], entry["after"]) == ({"status": "held"}, {"status": "expired"})


async def test_the_housekeeping_pass_audits_canceled_unpaid_orders(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    location = await place(client, world, tenant=world.a, code="JOB-WH")
    await stocked_item(client, world, tenant=world.a, sku="JOB-TEA", on_hand={location: 5})
    order = await placed(
        client, world, tenant=world.a, lines=[{"sku": "JOB-TEA", "quantity": 1, "unit_price": "1"}]
    )
    response = await client.patch(
        f"/api/v1/tenants/{world.a}",
        json={"settings": {"unpaid_order_expiry_minutes": 30}},
        headers=world.platform,
    )
    assert response.status_code == 200, response.text

    report = await maintenance.run_once(database, now=datetime.now(UTC) + timedelta(hours=1))

    assert report.unpaid_orders_canceled >= 1
    last = (await entries(owner_connection, tenant=world.a))[-1]
    assert (last["actor"], last["action"], last["entity_id"]) == (
        "system",
        "change_status",
        order["id"],
    )
    assert last["after"] == {"status": "canceled"}


async def test_a_signed_callback_is_audited_as_system_with_its_request(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await place(client, world, tenant=world.a, code="JOB-WH")
    await stocked_item(client, world, tenant=world.a, sku="JOB-CUP", on_hand={location: 5})
    order = await placed(
        client, world, tenant=world.a, lines=[{"sku": "JOB-CUP", "quantity": 1, "unit_price": "1"}]
    )
    for status in ("processed", "shipped"):
        await moved(client, world, tenant=world.a, order_id=order["id"], status=status)
    secret = await new_secret(client, world, tenant=world.a)

    delivered = await send_callback(
        client,
        tenant=world.a,
        secret=secret,
        payload={"type": "shipment.delivered", "order_id": order["id"]},
    )
    forged = await send_callback(
        client,
        tenant=world.a,
        secret="whsec_" + "A" * 32,
        payload={"type": "shipment.delivered", "order_id": order["id"]},
    )

    assert (delivered.status_code, forged.status_code) == (200, 401)
    last = (await entries(owner_connection, tenant=world.a))[-1]
    assert (last["actor"], last["role"], last["action"]) == ("system", None, "change_status")
    assert (last["before"], last["after"]) == ({"status": "shipped"}, {"status": "delivered"})
    assert last["request_id"] == delivered.headers["X-Request-ID"]
    assert last["client_address"] == "127.0.0.1"
