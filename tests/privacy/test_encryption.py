"""Customer personal data is encrypted at rest: raw SQL over every column of every table finds
none of it, while the API reads it back."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database
from shelfkeeper.privacy import crypto
from shelfkeeper.privacy import service as privacy_service
from tests.conftest import TenantWorld
from tests.order.after_sale import (
    exchanges_url,
    new_secret,
    refunds_url,
    request_return,
    send_callback,
    shipped_order,
    towel_world,
)
from tests.order.factories import order_body, orders_url, patch_order, read_order
from tests.privacy.factories import (
    GRACE,
    GRACE_ADDRESS,
    GRACE_NEEDLES,
    plaintext_hits,
    rows_as_text,
)


async def test_the_detector_finds_plaintext_as_text_and_as_hex(
    owner_connection: Connection,
) -> None:
    as_json = await owner_connection.fetchval("SELECT $1::jsonb::text", GRACE)
    as_bytes = await owner_connection.fetchval(
        "SELECT convert_to($1, 'UTF8')::text", "Grace.Hopper@Example.com"
    )

    assert plaintext_hits({"t": [as_json]}, GRACE_NEEDLES) == [
        ("t", "Grace.Hopper@Example.com"),
        ("t", "Grace Hopper"),
        ("t", "+1 555 0100"),
    ]
    assert plaintext_hits({"t": [as_bytes]}, GRACE_NEEDLES) == [("t", "Grace.Hopper@Example.com")]


async def test_no_table_holds_a_customers_personal_data_in_plaintext(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    tenant = world.a
    _, variant = await towel_world(client, world, tenant=tenant)
    line = {"variant_id": variant, "quantity": 2, "unit_price": "10.00"}
    body = order_body(lines=[line], customer=GRACE, shipping_address=GRACE_ADDRESS)
    headers = world.headers(tenant, "clerk") | {"Idempotency-Key": "grace-1"}
    placed = await client.post(orders_url(tenant), json=body, headers=headers)
    assert placed.status_code == 201, placed.text
    replayed = await client.post(orders_url(tenant), json=body, headers=headers)
    moved_address = await patch_order(
        client,
        world,
        tenant=tenant,
        order_id=placed.json()["id"],
        body={"shipping_address": GRACE_ADDRESS | {"line1": "42 Harbor Lane, flat 2"}},
    )
    shipped = await shipped_order(
        client, world, tenant=tenant, lines=[line], customer=GRACE, shipping_address=GRACE_ADDRESS
    )
    paid = await client.post(
        f"{orders_url(tenant)}/{shipped['id']}/payments",
        json={"amount": "20.00"},
        headers=world.headers(tenant),
    )
    returned = await request_return(
        client,
        world,
        tenant=tenant,
        order_id=shipped["id"],
        lines=[{"line_id": shipped["lines"][0]["id"], "quantity": 1, "restock": True}],
    )
    refunded = await client.post(
        refunds_url(tenant, shipped["id"]), json={"amount": "5.00"}, headers=world.headers(tenant)
    )
    exchanged = await client.post(
        exchanges_url(tenant, shipped["id"]),
        json={
            "return_lines": [
                {"line_id": shipped["lines"][0]["id"], "quantity": 1, "restock": True}
            ],
            "new_lines": [line],
        },
        headers=world.headers(tenant),
    )
    secret = await new_secret(client, world, tenant=tenant)
    delivered = await send_callback(
        client,
        tenant=tenant,
        secret=secret,
        payload={"type": "shipment.delivered", "order_id": shipped["id"]},
    )

    assert [placed.status_code, replayed.status_code, moved_address.status_code] == [201] * 2 + [
        200
    ]
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == placed.json()
    assert [paid.status_code, returned.status_code, refunded.status_code] == [201] * 3
    assert exchanged.status_code == 201, exchanged.text
    assert delivered.status_code == 200, delivered.text
    rows = await rows_as_text(owner_connection, tenant=tenant)
    assert sum(len(texts) for texts in rows.values()) > 30
    assert plaintext_hits(rows, GRACE_NEEDLES) == []
    secret_key = secret.removeprefix("whsec_")
    assert plaintext_hits(rows, (secret_key,)) == []
    # ... while the API reads everything back
    for order_id in (placed.json()["id"], shipped["id"], exchanged.json()["order"]["id"]):
        order = await read_order(client, world, tenant=tenant, order_id=order_id)
        assert order["customer"] == GRACE
        assert order["shipping_address"] is not None
        assert order["shipping_address"]["name"] == "Grace Hopper"
    # events carry no personal data at all, not even sealed
    event_data = await owner_connection.fetch("SELECT data FROM event WHERE tenant_id = $1", tenant)
    assert len(event_data) >= 8
    assert all("customer" not in row["data"] for row in event_data)
    assert all("shipping_address" not in row["data"] for row in event_data)


async def test_sealed_values_open_only_for_their_tenant_and_column(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    _, variant = await towel_world(client, world, tenant=world.a)
    order = await shipped_order(
        client,
        world,
        tenant=world.a,
        lines=[{"variant_id": variant, "quantity": 1, "unit_price": "10.00"}],
        customer=GRACE,
        status="pending",
    )
    await towel_world(client, world, tenant=world.b)  # b has stock, and no data key yet
    sealed: bytes = await owner_connection.fetchval(
        "SELECT customer FROM sales_order WHERE tenant_id = $1 AND id = $2", world.a, order["id"]
    )

    async with database.tenant_transaction(world.a) as db:
        opened = await privacy_service.open_json(
            db, tenant_id=world.a, field="sales_order.customer", sealed=sealed
        )
        with pytest.raises(privacy_service.DataKeyUnavailable):
            await privacy_service.open_json(
                db, tenant_id=world.a, field="sales_order.shipping_address", sealed=sealed
            )
    async with database.tenant_transaction(world.b) as db:
        await privacy_service.sealer(db, tenant_id=world.b)  # b's own key 1
        with pytest.raises(privacy_service.DataKeyUnavailable):
            await privacy_service.open_json(
                db, tenant_id=world.b, field="sales_order.customer", sealed=sealed
            )

    assert opened == GRACE
    assert sealed[0] == 1
    assert int.from_bytes(sealed[1:5], "big") == 1  # sealed under data key version 1


async def test_a_tenant_deleted_and_created_again_gets_a_new_key_and_reads_its_data(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    _, variant = await towel_world(client, world, tenant=world.a)
    first = await client.post(
        orders_url(world.a),
        json=order_body(
            lines=[{"variant_id": variant, "quantity": 1, "unit_price": "10.00"}], customer=GRACE
        ),
        headers=world.headers(world.a),
    )
    old_key = await owner_connection.fetchval(
        "SELECT wrapped_key FROM tenant_data_key WHERE tenant_id = $1", world.a
    )
    deleted = await client.delete(f"/api/v1/tenants/{world.a}", headers=world.platform)
    created = await client.post(
        "/api/v1/tenants", json={"id": world.a, "name": "Again"}, headers=world.platform
    )
    _, variant = await towel_world(client, world, tenant=world.a)
    again = await client.post(
        orders_url(world.a),
        json=order_body(
            lines=[{"variant_id": variant, "quantity": 1, "unit_price": "10.00"}], customer=GRACE
        ),
        headers=world.headers(world.a),
    )
    new_key = await owner_connection.fetchval(
        "SELECT wrapped_key FROM tenant_data_key WHERE tenant_id = $1", world.a
    )
    # another process still caching the old key 1: it is read again when it fails to open
    privacy_service._data_keys[(world.a, 1)] = (old_key, AESGCM(b"\x00" * 32))
    read = await read_order(client, world, tenant=world.a, order_id=again.json()["id"])

    assert (first.status_code, deleted.status_code, created.status_code) == (201, 204, 201)
    assert again.status_code == 201, again.text
    assert again.json()["number"] == 1
    assert new_key != old_key
    assert read["customer"] == GRACE


async def test_each_data_key_unwraps_under_the_master_key_that_wrapped_it(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
    settings: Settings,
    tmp_path: Path,
) -> None:
    _, variant = await towel_world(client, world, tenant=world.a)
    line = {"variant_id": variant, "quantity": 1, "unit_price": "10.00"}
    before = await client.post(
        orders_url(world.a),
        json=order_body(lines=[line], customer=GRACE),
        headers=world.headers(world.a),
    )
    other = Settings(database_url=settings.database_url, data_dir=tmp_path)
    privacy_service.use_master_key(other)  # new data keys are wrapped under another master
    try:
        async with database.tenant_transaction(world.b) as db:
            sealed = (await privacy_service.sealer(db, tenant_id=world.b)).seal_json(
                "sales_order.customer", GRACE
            )
        privacy_service.forget(world.a)
        privacy_service.forget(world.b)
        read_a = await read_order(client, world, tenant=world.a, order_id=before.json()["id"])
        async with database.tenant_transaction(world.b) as db:
            read_b = await privacy_service.open_json(
                db, tenant_id=world.b, field="sales_order.customer", sealed=sealed
            )
    finally:
        privacy_service.use_master_key(settings)
    masters = await owner_connection.fetch(
        "SELECT tenant_id, master_key FROM tenant_data_key WHERE tenant_id = ANY($1::text[])",
        [world.a, world.b],
    )

    assert before.status_code == 201, before.text
    assert {row["tenant_id"]: row["master_key"] for row in masters} == {
        world.a: crypto.fingerprint(settings.master_key_bytes),
        world.b: crypto.fingerprint(other.master_key_bytes),
    }
    assert other.master_key_bytes != settings.master_key_bytes
    assert read_a["customer"] == GRACE
    assert read_b == GRACE
