"""Small keyword-only factories and owner-side reads for the order tests."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.inventory.ledger import find_drift
from tests.conftest import TenantWorld

PROBLEMS = "https://shelfkeeper.dev/problems/"
ORDER_TABLES = (
    "order_counter",
    "sales_order",
    "order_line",
    "order_allocation",
    "order_status_change",
    "payment",
)
CUSTOMER = {"email": "ada@example.com", "name": "Ada Lovelace"}


def orders_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/orders"


def order_url(tenant: str, order_id: str) -> str:
    return f"/api/v1/{tenant}/orders/{order_id}"


def lines_url(tenant: str, order_id: str) -> str:
    return f"/api/v1/{tenant}/orders/{order_id}/items"


def line_url(tenant: str, order_id: str, line_id: str) -> str:
    return f"/api/v1/{tenant}/orders/{order_id}/items/{line_id}"


def payments_url(tenant: str, order_id: str) -> str:
    return f"/api/v1/{tenant}/orders/{order_id}/payments"


def order_body(
    *,
    lines: list[dict[str, Any]],
    currency: str = "USD",
    customer: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    return {"customer": customer or CUSTOMER, "currency": currency, "lines": lines, **fields}


async def place_order(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    lines: list[dict[str, Any]],
    role: str = "clerk",
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> httpx.Response:
    """POST an order; returns the raw response."""
    return await client.post(
        orders_url(tenant),
        json=order_body(lines=lines, **fields),
        headers=headers if headers is not None else world.headers(tenant, role),
    )


async def placed(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    lines: list[dict[str, Any]],
    **fields: Any,
) -> dict[str, Any]:
    """An order that must be placed; returns its body."""
    response = await place_order(client, world, tenant=tenant, lines=lines, **fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def patch_order(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    order_id: str,
    body: dict[str, Any],
    role: str = "clerk",
    if_match: str | None = None,
) -> httpx.Response:
    headers = world.headers(tenant, role)
    if if_match is not None:
        headers["If-Match"] = if_match
    return await client.patch(order_url(tenant, order_id), json=body, headers=headers)


async def moved(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, order_id: str, status: str
) -> dict[str, Any]:
    """Move the order to `status` (must succeed); returns the order."""
    response = await patch_order(
        client, world, tenant=tenant, order_id=order_id, body={"status": status}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def read_order(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, order_id: str
) -> dict[str, Any]:
    response = await client.get(order_url(tenant, order_id), headers=world.headers(tenant))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- owner-side reads ---------------------------------------------------------------------


async def order_rows(owner: Connection, *, tenant: str) -> dict[str, list[dict[str, Any]]]:
    """Every order row of `tenant`, table by table (equal snapshots: nothing written)."""
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for table in ORDER_TABLES:
        rows = await owner.fetch(
            f"SELECT * FROM {table} AS t WHERE tenant_id = $1 ORDER BY t::text", tenant
        )
        snapshot[table] = [dict(row) for row in rows]
    return snapshot


async def events(owner: Connection, *, tenant: str) -> list[tuple[str, str]]:
    """`(type, subject)` of the tenant's order events, oldest first."""
    rows = await owner.fetch(
        "SELECT type, subject FROM event WHERE tenant_id = $1 AND type LIKE 'Order%' "
        "ORDER BY time, id",
        tenant,
    )
    return [(row["type"], row["subject"]) for row in rows]


async def event_data(owner: Connection, *, tenant: str) -> list[dict[str, Any]]:
    """The `data` of the tenant's order events, oldest first."""
    rows = await owner.fetch(
        "SELECT data FROM event WHERE tenant_id = $1 AND type LIKE 'Order%' ORDER BY time, id",
        tenant,
    )
    return [row["data"] for row in rows]


async def order_movements(
    owner: Connection, *, tenant: str, order_id: str
) -> list[tuple[str, str, str, int, str]]:
    """`(variant_id, location_id, operation, quantity, reason)` of the movements referencing
    the order, in ledger order."""
    rows = await owner.fetch(
        "SELECT variant_id, location_id, operation, quantity, reason FROM stock_movement "
        "WHERE tenant_id = $1 AND reference = $2 ORDER BY created_at, level_version",
        tenant,
        f"order:{order_id}",
    )
    return [
        (
            str(row["variant_id"]),
            str(row["location_id"]),
            row["operation"],
            row["quantity"],
            row["reason"],
        )
        for row in rows
    ]


async def assert_ledger_sound(database: Database, tenant: str) -> None:
    async with database.tenant_transaction(tenant) as db:
        assert await find_drift(db, tenant_id=tenant) == []


def allocations(order: dict[str, Any]) -> list[list[tuple[str, int]]]:
    """Each line's allocations as `(location_id, quantity)` pairs."""
    return [
        [(piece["location_id"], piece["quantity"]) for piece in line["allocations"]]
        for line in order["lines"]
    ]
