"""Who may do what with orders, and another tenant's orders are not there at all."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import inventory_rows
from tests.inventory.reservation_factories import place, stocked_item
from tests.kit.assertions import assert_problem
from tests.order.factories import (
    events,
    line_url,
    lines_url,
    order_rows,
    order_url,
    orders_url,
    payments_url,
    placed,
)

LINE = {"sku": "TOWEL", "quantity": 1, "unit_price": "1"}


async def snapshot(owner: Connection, world: TenantWorld) -> dict[str, Any]:
    return {
        tenant: {
            **await inventory_rows(owner, tenant=tenant),
            **await order_rows(owner, tenant=tenant),
            "event": await events(owner, tenant=tenant),
        }
        for tenant in (world.a, world.b)
    }


async def stocked_order(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str
) -> dict[str, Any]:
    north = await place(client, world, tenant=tenant, code="N")
    await stocked_item(client, world, tenant=tenant, sku="TOWEL", on_hand={north: 10})
    return await placed(client, world, tenant=tenant, lines=[LINE, LINE])


def operations(tenant: str, order: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every order operation on `order`, as (method, url, body)."""
    line = order["lines"][0]["id"]
    return [
        ("GET", orders_url(tenant), None),
        ("GET", order_url(tenant, order["id"]), None),
        (
            "POST",
            orders_url(tenant),
            {"customer": {"email": "a@b.c"}, "currency": "USD", "lines": [LINE]},
        ),
        ("PATCH", order_url(tenant, order["id"]), {"status": "processed"}),
        ("POST", lines_url(tenant, order["id"]), LINE),
        ("PATCH", line_url(tenant, order["id"], line), {"quantity": 2}),
        ("DELETE", line_url(tenant, order["id"], line), None),
        ("POST", payments_url(tenant, order["id"]), {"amount": "1"}),
    ]


WRITES = ("POST", "PATCH", "DELETE")


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> httpx.Response:
    return await client.request(method, url, json=body, headers=headers)


async def test_anonymous_callers_get_401_and_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await stocked_order(client, world, world.a)
    before = await snapshot(owner_connection, world)

    for method, url, body in operations(world.a, order):
        response = await call(client, method, url, body, {})
        assert_problem(response, status=401, slug="unauthorized")

    assert await snapshot(owner_connection, world) == before


async def test_another_tenants_credential_gets_403_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await stocked_order(client, world, world.a)
    before = await snapshot(owner_connection, world)

    for method, url, body in operations(world.a, order):
        response = await call(client, method, url, body, world.headers(world.b, "admin"))
        assert_problem(response, status=403, slug="tenant-mismatch")

    assert await snapshot(owner_connection, world) == before


async def test_another_tenants_order_ids_are_404_in_ones_own_tenant(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    theirs = await stocked_order(client, world, world.b)
    await stocked_order(client, world, world.a)
    before = await snapshot(owner_connection, world)

    for method, url, body in operations(world.a, theirs)[1:]:
        if url == orders_url(world.a):
            continue
        response = await call(client, method, url, body, world.headers(world.a, "admin"))
        assert_problem(response, status=404, slug="not-found")
    listed = await client.get(orders_url(world.a), headers=world.headers(world.a))
    assert theirs["id"] not in [order["id"] for order in listed.json()["data"]]

    assert await snapshot(owner_connection, world) == before


async def test_viewers_read_and_may_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order = await stocked_order(client, world, world.a)
    before = await snapshot(owner_connection, world)

    for method, url, body in operations(world.a, order):
        response = await call(client, method, url, body, world.headers(world.a, "viewer"))
        if method in WRITES:
            assert_problem(response, status=403, slug="forbidden")
        else:
            assert response.status_code == 200, response.text

    assert await snapshot(owner_connection, world) == before


@pytest.mark.parametrize("role", ["clerk", "admin"])
async def test_clerks_and_admins_do_everything(
    client: httpx.AsyncClient, world: TenantWorld, role: str
) -> None:
    order = await stocked_order(client, world, world.a)

    statuses = [
        (await call(client, method, url, body, world.headers(world.a, role))).status_code
        for method, url, body in operations(world.a, order)
    ]

    assert statuses == [200, 200, 201, 200, 201, 200, 204, 201]
