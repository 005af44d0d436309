"""Signed integration callbacks: Standard Webhooks signatures, fresh timestamps, no replays."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.kit.assertions import assert_problem
from tests.order.after_sale import (
    callback_url,
    new_secret,
    secret_url,
    send_callback,
    shipped_order,
    signed_headers,
    towel_world,
)
from tests.order.factories import order_rows, read_order

TOWELS = [{"sku": "TOWEL", "quantity": 3, "unit_price": "10.00"}]


async def receipts(owner: Connection, tenant: str) -> int:
    count: int = await owner.fetchval(
        "SELECT count(*) FROM callback_receipt WHERE tenant_id = $1", tenant
    )
    return count


async def test_a_signed_payment_callback_records_a_payment_once(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await towel_world(client, world, tenant=world.a)
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS, status="pending")
    secret = await new_secret(client, world, tenant=world.a)
    payload = {
        "type": "payment.captured",
        "order_id": order["id"],
        "amount": "12.00",
        "reference": "ch_1",
    }

    first = await send_callback(
        client, tenant=world.a, secret=secret, payload=payload, webhook_id="msg_1"
    )
    replay = await send_callback(
        client, tenant=world.a, secret=secret, payload=payload, webhook_id="msg_1"
    )

    assert first.status_code == 200, first.text
    assert first.json() == {"webhook_id": "msg_1", "outcome": "processed", "order_id": order["id"]}
    assert replay.status_code == 200, replay.text
    assert replay.json()["outcome"] == "duplicate"
    after = await read_order(client, world, tenant=world.a, order_id=order["id"])
    assert (after["amount_paid"], after["payment_status"]) == ("12.00", "partially_paid")
    assert [(p["amount"], p["reference"], p["created_by"]) for p in after["payments"]] == [
        ("12.00", "ch_1", "system")
    ]
    assert await receipts(owner_connection, world.a) == 1
    audited = await owner_connection.fetch(
        "SELECT actor, role, action, entity_id, after FROM audit_entry "
        "WHERE tenant_id = $1 AND action = 'record_payment'",
        world.a,
    )
    assert [(row["actor"], row["role"], row["entity_id"]) for row in audited] == [
        ("system", None, order["id"])
    ]
    assert audited[0]["after"]["amount_paid"] == "12.00"


async def test_a_delivery_callback_delivers_a_shipped_order(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    await towel_world(client, world, tenant=world.a)
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS)
    secret = await new_secret(client, world, tenant=world.a)

    response = await send_callback(
        client,
        tenant=world.a,
        secret=secret,
        payload={"type": "shipment.delivered", "order_id": order["id"]},
    )

    assert response.status_code == 200, response.text
    after = await read_order(client, world, tenant=world.a, order_id=order["id"])
    assert after["status"] == "delivered"
    assert after["status_history"][-1]["actor"] == "system"


async def test_bad_stale_and_foreign_signatures_are_refused_and_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await towel_world(client, world, tenant=world.a)
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS, status="pending")
    secret = await new_secret(client, world, tenant=world.a)
    other_secret = await new_secret(client, world, tenant=world.b)
    payload = {"type": "payment.captured", "order_id": order["id"], "amount": "1.00"}
    body = json.dumps(payload).encode()
    before = await order_rows(owner_connection, tenant=world.a)
    now = datetime.now(UTC)

    tampered_headers = signed_headers(secret, body)
    attempts = [
        # another tenant's secret
        await send_callback(client, tenant=world.a, secret=other_secret, payload=payload),
        # too old, and too far in the future
        await send_callback(
            client, tenant=world.a, secret=secret, payload=payload, at=now - timedelta(minutes=6)
        ),
        await send_callback(
            client, tenant=world.a, secret=secret, payload=payload, at=now + timedelta(minutes=6)
        ),
        # a body other than the signed one
        await client.post(
            callback_url(world.a),
            content=body.replace(b"1.00", b"9.00"),
            headers=tampered_headers,
        ),
        # no signature at all
        await client.post(callback_url(world.a), content=body),
        # a bearer token is no credential here
        await client.post(callback_url(world.a), content=body, headers=world.headers(world.a)),
        # no secret set for the tenant
        await send_callback(client, tenant=world.b, secret=secret, payload=payload),
    ]

    for response in attempts:
        assert_problem(response, status=401, slug="invalid-signature")
    assert await order_rows(owner_connection, tenant=world.a) == before
    assert await receipts(owner_connection, world.a) == 0
    unknown = await send_callback(
        client, tenant=world.a, secret=secret, payload=payload, provider="acme-pay"
    )
    assert unknown.status_code == 404
    # a rotated secret replaces the old one at once
    rotated = await new_secret(client, world, tenant=world.a)
    old = await send_callback(client, tenant=world.a, secret=secret, payload=payload)
    assert_problem(old, status=401, slug="invalid-signature")
    assert rotated != secret


async def test_a_signed_but_unreadable_payload_is_a_422_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    secret = await new_secret(client, world, tenant=world.a)

    response = await send_callback(
        client, tenant=world.a, secret=secret, payload={"type": "refund.created"}
    )

    assert response.status_code == 422, response.text
    assert await receipts(owner_connection, world.a) == 0


async def test_only_admins_set_callback_secrets(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    clerk = await client.post(secret_url(world.a), headers=world.headers(world.a, "clerk"))
    other = await client.post(secret_url(world.a), headers=world.headers(world.b))
    unknown = await client.post(secret_url(world.a, "acme-pay"), headers=world.headers(world.a))

    assert_problem(clerk, status=403, slug="forbidden")
    assert_problem(other, status=403, slug="tenant-mismatch")
    assert unknown.status_code == 404
    assert (
        await owner_connection.fetchval(
            "SELECT count(*) FROM integration_secret WHERE tenant_id = $1", world.a
        )
        == 0
    )
    created = await client.post(secret_url(world.a), headers=world.headers(world.a))
    assert created.status_code == 201
    assert created.json()["secret"].startswith("whsec_")
