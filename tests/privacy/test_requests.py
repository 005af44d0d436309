"""`GET /privacy/export` and `POST /privacy/erasure`: a customer's data, gathered or erased."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.order.after_sale import refunds_url, request_return, shipped_order, towel_world
from tests.order.factories import order_body, orders_url, placed, read_order
from tests.privacy.factories import (
    ADA,
    GRACE,
    GRACE_ADDRESS,
    GRACE_NEEDLES,
    customer_export,
    plaintext_hits,
    privacy_url,
    rows_as_text,
    tenant_export_text,
)

PROBLEMS = "https://shelfkeeper.dev/problems/"


async def grace_and_ada(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str
) -> dict[str, Any]:
    """Grace: a pending order (placed with an Idempotency-Key) and a shipped, paid, returned
    and partly refunded one. Ada: one order. Returns them by name."""
    _, variant = await towel_world(client, world, tenant=tenant)
    line = {"variant_id": variant, "quantity": 1, "unit_price": "10.00"}
    pending = await client.post(
        orders_url(tenant),
        json=order_body(lines=[line], customer=GRACE, shipping_address=GRACE_ADDRESS),
        headers=world.headers(tenant, "clerk") | {"Idempotency-Key": f"grace-{tenant}"},
    )
    assert pending.status_code == 201, pending.text
    shipped = await shipped_order(
        client, world, tenant=tenant, lines=[line], customer=GRACE, shipping_address=GRACE_ADDRESS
    )
    paid = await client.post(
        f"{orders_url(tenant)}/{shipped['id']}/payments",
        json={"amount": "10.00"},
        headers=world.headers(tenant),
    )
    assert paid.status_code == 201, paid.text
    returned = await request_return(
        client,
        world,
        tenant=tenant,
        order_id=shipped["id"],
        lines=[{"line_id": shipped["lines"][0]["id"], "quantity": 1, "restock": True}],
    )
    assert returned.status_code == 201, returned.text
    refunded = await client.post(
        refunds_url(tenant, shipped["id"]),
        json={"amount": "4.00", "return_id": returned.json()["id"]},
        headers=world.headers(tenant),
    )
    assert refunded.status_code == 201, refunded.text
    ada = await placed(client, world, tenant=tenant, lines=[line], customer=ADA)
    return {
        "pending": pending.json(),
        "shipped": refunded.json(),
        "return": returned.json(),
        "ada": ada,
    }


async def test_the_export_holds_everything_about_the_customer_and_nothing_else(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    orders = await grace_and_ada(client, world, tenant=world.a)

    export = await customer_export(client, world, tenant=world.a, email="GRACE.hopper@example.COM")

    assert export["email"] == "grace.hopper@example.com"
    assert [order["id"] for order in export["orders"]] == [
        orders["pending"]["id"],
        orders["shipped"]["id"],
    ]
    for order in export["orders"]:
        assert order["customer"] == GRACE
        assert order["shipping_address"] == GRACE_ADDRESS | {"line2": None, "region": None}
        assert order == await read_order(client, world, tenant=world.a, order_id=order["id"])
    shipped = export["orders"][1]
    assert [payment["amount"] for payment in shipped["payments"]] == ["10.00"]
    assert [refund["amount"] for refund in shipped["refunds"]] == ["4.00"]
    assert export["returns"] == [orders["return"]]


async def test_an_unknown_customer_exports_empty(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    await grace_and_ada(client, world, tenant=world.a)

    export = await customer_export(client, world, tenant=world.a, email="nobody@example.com")
    elsewhere = await customer_export(client, world, tenant=world.b, email=GRACE["email"])

    assert (export["orders"], export["returns"]) == ([], [])
    assert (elsewhere["orders"], elsewhere["returns"]) == ([], [])


async def test_erasure_pseudonymises_the_customer_everywhere_and_keeps_the_orders(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    orders = await grace_and_ada(client, world, tenant=world.a)
    before = await tenant_export_text(client, world, tenant=world.a)
    events_before = await owner_connection.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1 AND type = 'OrderUpdated'", world.a
    )

    erased = await client.post(
        privacy_url(world.a, "erasure"),
        json={"email": "grace.hopper@example.com"},
        headers=world.headers(world.a),
    )
    again = await client.post(
        privacy_url(world.a, "erasure"),
        json={"email": GRACE["email"]},
        headers=world.headers(world.a),
    )

    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "orders": [orders["pending"]["id"], orders["shipped"]["id"]],
        "stored_responses_erased": 1,
    }
    assert again.json() == {"orders": [], "stored_responses_erased": 0}
    # the data was there, decrypted, before; now it is nowhere, decrypted or not
    assert all(needle in before for needle in GRACE_NEEDLES)
    after = await tenant_export_text(client, world, tenant=world.a)
    assert [needle for needle in GRACE_NEEDLES if needle.lower() in after.lower()] == []
    assert plaintext_hits(await rows_as_text(owner_connection, tenant=world.a), GRACE_NEEDLES) == []
    pseudonyms = set()
    for name in ("pending", "shipped"):
        original = orders[name]
        now = await read_order(client, world, tenant=world.a, order_id=original["id"])
        assert now["customer"]["email"].endswith("@erased.invalid")
        assert (now["customer"]["name"], now["customer"]["phone"]) == (None, None)
        assert now["shipping_address"] is None
        assert (now["number"], now["total"], now["amount_paid"], now["amount_refunded"]) == (
            original["number"],
            original["total"],
            original["amount_paid"],
            original["amount_refunded"],
        )
        assert now["lines"] == original["lines"]
        assert now["version"] == original["version"] + 1
        pseudonyms.add(now["customer"]["email"])
    assert len(pseudonyms) == 1
    ada = await read_order(client, world, tenant=world.a, order_id=orders["ada"]["id"])
    assert ada["customer"] == ADA | {"phone": None}
    assert ada["version"] == orders["ada"]["version"]
    found = await client.get(
        orders_url(world.a),
        params={"customer_email": GRACE["email"]},
        headers=world.headers(world.a),
    )
    assert found.json()["data"] == []
    export = await customer_export(client, world, tenant=world.a, email=GRACE["email"])
    assert export["orders"] == []
    events_after = await owner_connection.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1 AND type = 'OrderUpdated'", world.a
    )
    assert events_after == events_before + 2


async def test_a_retry_of_an_erased_request_is_gone_not_repeated(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    _, variant = await towel_world(client, world, tenant=world.a)
    body = order_body(
        lines=[{"variant_id": variant, "quantity": 1, "unit_price": "10.00"}], customer=GRACE
    )
    headers = world.headers(world.a, "clerk") | {"Idempotency-Key": "retry-me"}
    first = await client.post(orders_url(world.a), json=body, headers=headers)
    erased = await client.post(
        privacy_url(world.a, "erasure"),
        json={"email": GRACE["email"]},
        headers=world.headers(world.a),
    )

    retry = await client.post(orders_url(world.a), json=body, headers=headers)

    assert first.status_code == 201, first.text
    assert erased.json()["stored_responses_erased"] == 1
    assert retry.status_code == 410
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["type"] == PROBLEMS + "response-erased"
    assert "grace" not in retry.text.lower()
    count = await owner_connection.fetchval(
        "SELECT count(*) FROM sales_order WHERE tenant_id = $1", world.a
    )
    assert count == 1


@pytest.mark.parametrize(
    ("role", "status", "slug"), [("clerk", 403, "forbidden"), ("viewer", 403, "forbidden")]
)
async def test_only_admins_export_or_erase_and_a_refusal_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, role: str, status: int, slug: str
) -> None:
    orders = await grace_and_ada(client, world, tenant=world.a)
    headers = world.headers(world.a, role)

    exported = await client.get(
        privacy_url(world.a, "export"), params={"email": GRACE["email"]}, headers=headers
    )
    erased = await client.post(
        privacy_url(world.a, "erasure"), json={"email": GRACE["email"]}, headers=headers
    )

    assert (exported.status_code, erased.status_code) == (status, status)
    assert exported.json()["type"] == erased.json()["type"] == PROBLEMS + slug
    order = await read_order(client, world, tenant=world.a, order_id=orders["pending"]["id"])
    assert order == orders["pending"]


async def test_anonymous_and_other_tenants_are_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    orders = await grace_and_ada(client, world, tenant=world.a)
    other = world.headers(world.b)

    anonymous = [
        await client.get(privacy_url(world.a, "export"), params={"email": GRACE["email"]}),
        await client.post(privacy_url(world.a, "erasure"), json={"email": GRACE["email"]}),
    ]
    foreign = [
        await client.get(
            privacy_url(world.a, "export"), params={"email": GRACE["email"]}, headers=other
        ),
        await client.post(
            privacy_url(world.a, "erasure"), json={"email": GRACE["email"]}, headers=other
        ),
    ]

    assert [response.status_code for response in anonymous] == [401, 401]
    assert [response.status_code for response in foreign] == [403, 403]
    assert {response.json()["type"] for response in foreign} == {PROBLEMS + "tenant-mismatch"}
    order = await read_order(client, world, tenant=world.a, order_id=orders["shipped"]["id"])
    assert order["customer"] == GRACE


@pytest.mark.parametrize("email", ["", "nope", "a b@example.com", "x" * 300 + "@example.com"])
async def test_a_malformed_email_is_422(
    client: httpx.AsyncClient, world: TenantWorld, email: str
) -> None:
    headers = world.headers(world.a)

    exported = await client.get(
        privacy_url(world.a, "export"), params={"email": email}, headers=headers
    )
    erased = await client.post(
        privacy_url(world.a, "erasure"), json={"email": email}, headers=headers
    )
    missing = await client.get(privacy_url(world.a, "export"), headers=headers)

    assert (exported.status_code, erased.status_code, missing.status_code) == (422, 422, 422)
    assert exported.json()["errors"][0]["loc"] == ["query", "email"]
    assert erased.json()["errors"][0]["loc"] == ["body", "email"]
