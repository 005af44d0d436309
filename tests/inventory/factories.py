"""Small keyword-only factories and owner-side snapshots for the inventory tests."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.location.factories import create_location

INVENTORY_TABLES = ("item", "variant", "sku", "stock_level", "stock_movement")


# --- urls ---------------------------------------------------------------------------------


def items_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/inventory"


def item_url(tenant: str, item_id: str) -> str:
    return f"/api/v1/{tenant}/inventory/{item_id}"


def stock_url(tenant: str, item_id: str) -> str:
    return f"/api/v1/{tenant}/inventory/{item_id}/stock"


def movements_url(tenant: str, item_id: str) -> str:
    return f"/api/v1/{tenant}/inventory/{item_id}/movements"


def variants_url(tenant: str, item_id: str) -> str:
    return f"/api/v1/{tenant}/inventory/{item_id}/variants"


def variant_url(tenant: str, item_id: str, variant_id: str) -> str:
    return f"/api/v1/{tenant}/inventory/{item_id}/variants/{variant_id}"


def adjustments_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/stock/adjustments"


def transfers_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/stock/transfers"


# --- factories ----------------------------------------------------------------------------


async def new_location(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, code: str = "WH-1"
) -> str:
    """Create a location as the tenant's admin; returns its id."""
    created = await create_location(client, world, tenant=tenant, code=code, name=code)
    location_id: str = created["id"]
    return location_id


async def create_item(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    sku: str = "TOWEL",
    name: str = "Bath towel",
    **fields: Any,
) -> dict[str, Any]:
    """Create an item as the tenant's clerk; returns the response body."""
    response = await client.post(
        items_url(tenant),
        json={"sku": sku, "name": name, **fields},
        headers=world.headers(tenant, "clerk"),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def adjust(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    item_id: str,
    operation: str,
    quantity: int,
    location_id: str,
    role: str = "clerk",
    **fields: Any,
) -> httpx.Response:
    """PATCH one stock operation; returns the raw response."""
    return await client.patch(
        stock_url(tenant, item_id),
        json={"operation": operation, "quantity": quantity, "location_id": location_id, **fields},
        headers=world.headers(tenant, role),
    )


async def stock(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    item_id: str,
    operation: str,
    quantity: int,
    location_id: str,
    **fields: Any,
) -> dict[str, Any]:
    """A stock operation that must succeed; returns `{"level", "movement"}`."""
    response = await adjust(
        client,
        world,
        tenant=tenant,
        item_id=item_id,
        operation=operation,
        quantity=quantity,
        location_id=location_id,
        **fields,
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


# --- owner-side reads ---------------------------------------------------------------------


async def inventory_rows(owner: Connection, *, tenant: str) -> dict[str, list[dict[str, Any]]]:
    """Every inventory row of `tenant`, table by table, as the database owner sees them.

    Two snapshots are equal exactly when nothing of the tenant's inventory was written.
    """
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for table in INVENTORY_TABLES:
        rows = await owner.fetch(
            f"SELECT * FROM {table} AS t WHERE tenant_id = $1 ORDER BY t::text", tenant
        )
        snapshot[table] = [dict(row) for row in rows]
    return snapshot


async def row_counts(owner: Connection, *, tenant: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in INVENTORY_TABLES:
        counts[table] = await owner.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant
        )
    return counts


async def levels(owner: Connection, *, tenant: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """`(variant_id, location_id)` → `(on_hand, reserved, version)` for every level."""
    rows = await owner.fetch(
        "SELECT variant_id, location_id, on_hand, reserved, version FROM stock_level "
        "WHERE tenant_id = $1",
        tenant,
    )
    return {
        (str(row["variant_id"]), str(row["location_id"])): (
            row["on_hand"],
            row["reserved"],
            row["version"],
        )
        for row in rows
    }


async def movement_count(owner: Connection, *, tenant: str, operation: str | None = None) -> int:
    count: int = await owner.fetchval(
        "SELECT count(*) FROM stock_movement WHERE tenant_id = $1 "
        "AND ($2::text IS NULL OR operation = $2)",
        tenant,
        operation,
    )
    return count


async def sku_registry(owner: Connection, *, tenant: str) -> dict[str, tuple[str, str | None]]:
    """SKU → `(item_id, variant_id or None)` of the tenant's SKU registry."""
    rows = await owner.fetch(
        "SELECT sku, item_id, variant_id FROM sku WHERE tenant_id = $1", tenant
    )
    return {
        row["sku"]: (
            str(row["item_id"]),
            str(row["variant_id"]) if row["variant_id"] is not None else None,
        )
        for row in rows
    }
