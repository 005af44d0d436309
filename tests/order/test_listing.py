"""Listing orders: filters, sorts, keyset pages, and the customer-email blind index."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection
from shelfkeeper.order.blind_index import BlindIndex
from tests.conftest import TenantWorld
from tests.inventory.reservation_factories import place, stocked_item
from tests.kit.assertions import error_locations
from tests.order.factories import moved, orders_url, placed


async def some_orders(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str
) -> list[dict[str, Any]]:
    """Five orders: totals 30, 10, 50, 20, 40; two of them Ada's."""
    north = await place(client, world, tenant=tenant, code="N")
    await stocked_item(client, world, tenant=tenant, sku="TOWEL", on_hand={north: 100})
    customers = [
        "ada@example.com",
        "bob@example.com",
        "Ada@Example.COM",
        "cy@example.com",
        "dee@example.com",
    ]
    return [
        await placed(
            client,
            world,
            tenant=tenant,
            customer={"email": email},
            lines=[{"sku": "TOWEL", "quantity": 1, "unit_price": price}],
        )
        for email, price in zip(customers, ["30", "10", "50", "20", "40"], strict=True)
    ]


async def listed(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(
        orders_url(tenant), params=params, headers=world.headers(tenant, "viewer")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def every_page(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str, **params: Any
) -> list[int]:
    """The numbers of every order, walking the pages."""
    numbers: list[int] = []
    cursor = None
    while True:
        page = await listed(
            client, world, tenant, **params, **({"cursor": cursor} if cursor else {})
        )
        numbers += [order["number"] for order in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return numbers


async def test_orders_sort_and_page_by_every_sort_field(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    orders = await some_orders(client, world, world.a)
    await moved(client, world, tenant=world.a, order_id=orders[0]["id"], status="processed")

    assert await every_page(client, world, world.a, limit=2) == [1, 2, 3, 4, 5]
    assert await every_page(client, world, world.a, limit=2, sort="-created_at") == [5, 4, 3, 2, 1]
    assert await every_page(client, world, world.a, limit=2, sort="total") == [2, 4, 1, 5, 3]
    assert await every_page(client, world, world.a, limit=3, sort="-total") == [3, 5, 1, 4, 2]
    assert await every_page(client, world, world.a, limit=2, sort="-updated_at") == [1, 5, 4, 3, 2]
    assert (await listed(client, world, world.a, limit=5))["next_cursor"] is None


async def test_orders_filter_by_status_and_creation_time(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    orders = await some_orders(client, world, world.a)
    await moved(client, world, tenant=world.a, order_id=orders[1]["id"], status="canceled")
    third = datetime.fromisoformat(orders[2]["created_at"])

    canceled = await listed(client, world, world.a, status="canceled")
    pending = await every_page(client, world, world.a, status="pending", limit=2)
    since = await listed(client, world, world.a, created_after=third.isoformat())
    before = await listed(client, world, world.a, created_before=third.isoformat())
    future = await listed(
        client, world, world.a, created_after=(datetime.now(UTC) + timedelta(days=1)).isoformat()
    )

    assert [order["number"] for order in canceled["data"]] == [2]
    assert pending == [1, 3, 4, 5]
    assert [order["number"] for order in since["data"]] == [3, 4, 5]
    assert [order["number"] for order in before["data"]] == [1, 2]
    assert future["data"] == []


async def test_the_customer_email_filter_works_through_a_blind_index(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    settings: Settings,
) -> None:
    await some_orders(client, world, world.a)
    await some_orders(client, world, world.b)

    ada = await listed(client, world, world.a, customer_email="ADA@example.com ")
    nobody = await listed(client, world, world.a, customer_email="eve@example.com")

    assert [order["number"] for order in ada["data"]] == [1, 3]
    assert nobody["data"] == []
    rows = await owner_connection.fetch(
        "SELECT tenant_id, customer_email_index, customer FROM sales_order "
        "WHERE tenant_id = ANY($1::text[]) AND number = 1 ORDER BY tenant_id",
        [world.a, world.b],
    )
    index = BlindIndex(settings.master_key_bytes)
    for row in rows:
        stored = row["customer_email_index"]
        assert re.fullmatch(r"[0-9a-f]{64}", stored)
        assert b"ada@example.com" not in row["customer"].lower()  # sealed (docs/privacy.md)
        assert stored == index.email(row["tenant_id"], "ada@example.com")
    # the same email indexes differently in two tenants: no linking across them
    assert rows[0]["customer_email_index"] != rows[1]["customer_email_index"]


async def test_bad_list_parameters_are_422(client: httpx.AsyncClient, world: TenantWorld) -> None:
    await some_orders(client, world, world.a)
    page = await listed(client, world, world.a, limit=2)
    headers = world.headers(world.a, "viewer")

    cases: list[tuple[dict[str, Any], list[list[str | int]]]] = [
        ({"sort": "number"}, [["query", "sort"]]),
        ({"status": "lost"}, [["query", "status"]]),
        ({"created_after": "2026-01-01T00:00:00"}, [["query", "created_after"]]),
        ({"created_before": "yesterday"}, [["query", "created_before"]]),
        ({"created_before": "0.5"}, [["query", "created_before"]]),
        ({"limit": 0}, [["query", "limit"]]),
        ({"sort": "total", "cursor": page["next_cursor"]}, [["query", "cursor"]]),
        ({"sort": "total", "cursor": "bm9wZQ"}, [["query", "cursor"]]),
    ]
    for params, expected in cases:
        response = await client.get(orders_url(world.a), params=params, headers=headers)
        assert error_locations(response) == expected, (params, response.text)
