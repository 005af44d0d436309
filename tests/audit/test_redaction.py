"""The trail never holds personal data (a customer's e-mail, name, phone, addresses) or
secrets (API key secrets, callback secrets `whsec_`, tokens)."""

from __future__ import annotations

import json

import httpx

from shelfkeeper.audit import service
from shelfkeeper.db.database import Connection
from shelfkeeper.kit.recording import Change
from tests.conftest import TenantWorld
from tests.inventory.factories import create_item, new_location, stock
from tests.location.factories import create_location, location_url
from tests.order.after_sale import new_secret, send_callback
from tests.order.factories import moved, order_url, placed

PERSONAL = {
    "email": "grace.hopper@example.com",
    "name": "Grace Hopper",
    "phone": "+1 555 0100 222",
}
ADDRESS = {"name": "Grace Hopper", "line1": "99 Cobol Lane", "city": "Arlington", "country": "US"}


async def test_no_personal_data_or_secret_reaches_the_trail(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    tenant = world.a
    location = await create_location(
        client, world, tenant=tenant, code="PII-1", address={"line1": "7 Secret Street"}
    )
    changed = await client.patch(
        location_url(tenant, location["id"]),
        json={"address": {"line1": "8 Hidden Road"}},
        headers=world.headers(tenant),
    )
    assert changed.status_code == 200, changed.text
    location_id = await new_location(client, world, tenant=tenant, code="PII-2")
    item = await create_item(client, world, tenant=tenant, sku="PII-MUG")
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="add",
        quantity=5,
        location_id=location_id,
        note="call grace.hopper@example.com",
    )
    order = await placed(
        client,
        world,
        tenant=tenant,
        lines=[{"sku": "PII-MUG", "quantity": 1, "unit_price": "3.00"}],
        customer=PERSONAL,
        shipping_address=ADDRESS,
        notes="Leave with Grace Hopper, +1 555 0100 222",
    )
    edited = await client.patch(
        order_url(tenant, order["id"]),
        json={"notes": "ring grace.hopper@example.com", "shipping_address": ADDRESS},
        headers=world.headers(tenant),
    )
    assert edited.status_code == 200, edited.text
    await moved(client, world, tenant=tenant, order_id=order["id"], status="processed")
    key = await client.post(
        f"/api/v1/{tenant}/api-keys",
        json={"name": "scanner", "role": "clerk"},
        headers=world.headers(tenant),
    )
    assert key.status_code == 201, key.text
    callback_secret = await new_secret(client, world, tenant=tenant)
    paid = await send_callback(
        client,
        tenant=tenant,
        secret=callback_secret,
        payload={"type": "payment.captured", "order_id": order["id"], "amount": "3.00"},
    )
    assert paid.status_code == 200, paid.text

    rows = await owner_connection.fetch(
        "SELECT to_jsonb(a) AS entry FROM audit_entry a WHERE tenant_id = $1", tenant
    )
    trail = json.dumps([row["entry"] for row in rows])
    assert len(rows) >= 9
    for secret in (
        *PERSONAL.values(),
        "99 Cobol Lane",
        "Arlington",
        "7 Secret Street",
        "8 Hidden Road",
        key.json()["key"],
        callback_secret,
        "whsec_",
        "sk_",
        "Bearer",
        "eyJ",
    ):
        assert secret not in trail, secret
    assert "[REDACTED]" in trail  # the location's addresses, the stock note


def test_redaction_is_by_key_at_any_depth_and_scrubs_texts() -> None:
    change = Change(
        "order",
        "1",
        "update",
        before={"customer": {"email": "a@example.com"}, "status": "pending"},
        after={
            "status": "processed",
            "lines": [{"shipping_address": {"line1": "x"}, "sku": "TEA"}],
            "comment": "mail b@example.com with sk_acme_abcdefghijklmnop and whsec_c2VjcmV0",
            "webhook_secret": "whsec_c2VjcmV0",
            "token": "abc",
        },
    )

    [entry] = service.entries(service.SYSTEM, [change])

    assert entry.before == {"customer": "[REDACTED]", "status": "pending"}
    assert entry.after == {
        "status": "processed",
        "lines": [{"shipping_address": "[REDACTED]", "sku": "TEA"}],
        "comment": "mail [REDACTED] with [REDACTED] and [REDACTED]",
        "webhook_secret": "[REDACTED]",
        "token": "[REDACTED]",
    }
