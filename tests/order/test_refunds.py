"""Refunds: never more than paid minus refunded; `payment_status` follows."""

from __future__ import annotations

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.kit.assertions import assert_problem
from tests.order.after_sale import refunds_url, request_return, shipped_order, towel_world
from tests.order.factories import order_rows, payments_url

TOWELS = [{"sku": "TOWEL", "quantity": 3, "unit_price": "10.00"}]


async def paid_order(
    client: httpx.AsyncClient, world: TenantWorld, amount: str
) -> dict[str, object]:
    await towel_world(client, world, tenant=world.a)
    order = await shipped_order(client, world, tenant=world.a, lines=TOWELS)
    paid = await client.post(
        payments_url(world.a, str(order["id"])),
        json={"amount": amount},
        headers=world.headers(world.a, "clerk"),
    )
    assert paid.status_code == 201, paid.text
    body: dict[str, object] = paid.json()
    return body


async def refund_events(owner: Connection, tenant: str) -> int:
    count: int = await owner.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1 AND type = 'RefundIssued'", tenant
    )
    return count


async def test_refunds_move_payment_status_to_partially_refunded_then_refunded(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await paid_order(client, world, "30.00")
    url = refunds_url(world.a, str(order["id"]))
    returned = await request_return(
        client,
        world,
        tenant=world.a,
        order_id=str(order["id"]),
        lines=[{"line_id": order["lines"][0]["id"], "quantity": 1, "restock": True}],  # type: ignore[index]
    )

    first = await client.post(
        url,
        json={"amount": "10.00", "reason": "returned towel", "return_id": returned.json()["id"]},
        headers=world.headers(world.a, "clerk"),
    )
    second = await client.post(url, json={"amount": "20.00"}, headers=world.headers(world.a))

    assert first.status_code == 201, first.text
    body = first.json()
    assert (body["payment_status"], body["amount_refunded"], body["amount_paid"]) == (
        "partially_refunded",
        "10.00",
        "30.00",
    )
    assert [(r["amount"], r["reason"], r["return_id"], r["provider"]) for r in body["refunds"]] == [
        ("10.00", "returned towel", returned.json()["id"], "manual")
    ]
    assert second.status_code == 201, second.text
    assert (second.json()["payment_status"], second.json()["amount_refunded"]) == (
        "refunded",
        "30.00",
    )
    assert await refund_events(owner_connection, world.a) == 2


async def test_more_than_paid_minus_refunded_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await paid_order(client, world, "12.00")
    url = refunds_url(world.a, str(order["id"]))
    ok = await client.post(url, json={"amount": "5.00"}, headers=world.headers(world.a, "clerk"))
    assert ok.status_code == 201
    before = await order_rows(owner_connection, tenant=world.a)

    too_much = await client.post(
        url, json={"amount": "7.01"}, headers=world.headers(world.a, "clerk")
    )
    bad = [
        {"amount": 5},
        {"amount": "0"},
        {"amount": "-1.00"},
        {"amount": "1.001"},
        {"amount": "1.00", "provider": "stripe"},
        {"amount": "1.00", "return_id": str(order["id"])},
    ]
    responses = [
        await client.post(url, json=body, headers=world.headers(world.a, "clerk")) for body in bad
    ]
    viewer = await client.post(
        url, json={"amount": "1.00"}, headers=world.headers(world.a, "viewer")
    )
    other = await client.post(
        refunds_url(world.b, str(order["id"])),
        json={"amount": "1.00"},
        headers=world.headers(world.b, "clerk"),
    )

    body = assert_problem(too_much, status=409, slug="refund-exceeds-paid")
    assert body["refundable"] == "7.00"
    assert [response.status_code for response in responses] == [422] * len(bad)
    assert_problem(viewer, status=403, slug="forbidden")
    assert other.status_code == 404
    assert await order_rows(owner_connection, tenant=world.a) == before
    assert await refund_events(owner_connection, world.a) == 1
