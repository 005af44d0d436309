"""Payments: recorded through a provider, `payment_status` follows, never more than owed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from shelfkeeper.db.database import Connection
from shelfkeeper.order.providers import (
    PAYMENT_PROVIDERS,
    SHIPPING_PROVIDERS,
    ManualPaymentProvider,
    ManualShippingProvider,
    PaymentOutcome,
    PaymentProvider,
    ShippingProvider,
)
from tests.conftest import TenantWorld
from tests.inventory.reservation_factories import place, stocked_item
from tests.kit.assertions import assert_problem, error_locations
from tests.order.factories import events, moved, order_rows, payments_url, placed


async def an_order(
    client: httpx.AsyncClient, world: TenantWorld, *, currency: str = "USD", price: str = "10.00"
) -> dict[str, Any]:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 10})
    return await placed(
        client,
        world,
        tenant=world.a,
        currency=currency,
        lines=[{"sku": "TOWEL", "quantity": 3, "unit_price": price}],
    )


async def pay(
    client: httpx.AsyncClient, world: TenantWorld, order_id: str, body: dict[str, Any]
) -> httpx.Response:
    return await client.post(
        payments_url(world.a, order_id), json=body, headers=world.headers(world.a, "clerk")
    )


async def test_payments_move_the_order_from_unpaid_to_paid(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await an_order(client, world)
    assert (order["total"], order["payment_status"]) == ("30.00", "unpaid")

    first = await pay(client, world, order["id"], {"amount": "12.50", "reference": "bank-1"})
    second = await pay(client, world, order["id"], {"amount": "17.5", "provider": "manual"})

    assert first.status_code == 201, first.text
    assert (first.json()["payment_status"], first.json()["amount_paid"]) == (
        "partially_paid",
        "12.50",
    )
    assert first.headers["ETag"] == '"2"'
    paid = second.json()
    assert (paid["payment_status"], paid["amount_paid"], paid["version"]) == ("paid", "30.00", 3)
    assert [
        (payment["amount"], payment["provider"], payment["reference"], payment["status"])
        for payment in paid["payments"]
    ] == [("12.50", "manual", "bank-1", "captured"), ("17.50", "manual", None, "captured")]
    assert {payment["created_by"] for payment in paid["payments"]} == {"user:tester"}
    assert [kind for kind, _ in await events(owner_connection, tenant=world.a)] == [
        "OrderPlaced",
        "OrderUpdated",
        "OrderUpdated",
    ]


async def test_more_than_the_order_owes_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await an_order(client, world)
    await pay(client, world, order["id"], {"amount": "25.00"})
    before = await order_rows(owner_connection, tenant=world.a)

    response = await pay(client, world, order["id"], {"amount": "5.01"})

    problem = assert_problem(response, status=409, slug="payment-exceeds-total")
    assert problem["due"] == "5.00"
    assert await order_rows(owner_connection, tenant=world.a) == before


async def test_bad_payments_are_422_and_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await an_order(client, world, currency="JPY", price="1000")
    before = await order_rows(owner_connection, tenant=world.a)

    cases: list[tuple[dict[str, Any], list[list[str | int]]]] = [
        ({"amount": "10.5"}, [["body", "amount"]]),  # yen have no decimals
        ({"amount": 10}, [["body", "amount"]]),  # a JSON number
        ({"amount": "0"}, [["body", "amount"]]),
        ({"amount": "-5"}, [["body", "amount"]]),
        ({"amount": "NaN"}, [["body", "amount"]]),
        ({"amount": "5", "provider": "stripe"}, [["body", "provider"]]),
        ({"amount": "5", "provider": "Manual!"}, [["body", "provider"]]),
        ({"amount": "5", "surprise": True}, [["body", "surprise"]]),
        ({}, [["body", "amount"]]),
    ]
    for body, expected in cases:
        response = await pay(client, world, order["id"], body)
        assert error_locations(response) == expected, (body, response.text)
    assert await order_rows(owner_connection, tenant=world.a) == before

    fits = await pay(client, world, order["id"], {"amount": "1000"})
    assert (fits.json()["amount_paid"], fits.json()["payment_status"]) == ("1000", "partially_paid")


async def test_a_canceled_order_takes_no_payment(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await an_order(client, world)
    await moved(client, world, tenant=world.a, order_id=order["id"], status="canceled")
    before = await order_rows(owner_connection, tenant=world.a)

    response = await pay(client, world, order["id"], {"amount": "1"})
    missing = await pay(client, world, "00000000-0000-4000-8000-000000000000", {"amount": "1"})

    assert assert_problem(response, status=409, slug="order-locked")["order_status"] == "canceled"
    assert_problem(missing, status=404, slug="not-found")
    assert await order_rows(owner_connection, tenant=world.a) == before


async def test_the_manual_providers_satisfy_the_provider_interfaces() -> None:
    payment: PaymentProvider = ManualPaymentProvider()
    shipping: ShippingProvider = ManualShippingProvider()

    assert PAYMENT_PROVIDERS == {"manual": PAYMENT_PROVIDERS["manual"]}
    assert set(SHIPPING_PROVIDERS) == {"manual"}
    assert (payment.name, payment.local, shipping.name, shipping.local) == (
        "manual",
        True,
        "manual",
        True,
    )
    for call, outcome in (
        (payment.authorize, PaymentOutcome.AUTHORIZED),
        (payment.capture, PaymentOutcome.CAPTURED),
        (payment.refund, PaymentOutcome.REFUNDED),
    ):
        result = await call(amount=Decimal("1.00"), currency="USD", reference="r")
        assert (result.outcome, result.reference) == (outcome, "r")
    booked = await shipping.create_shipment(order_id="o", carrier="DHL", tracking_number="1")
    assert (booked.carrier, booked.tracking_number) == ("DHL", "1")
    assert not payment.verify_callback(headers={}, body=b"{}")
    assert not shipping.verify_callback(headers={}, body=b"{}")
