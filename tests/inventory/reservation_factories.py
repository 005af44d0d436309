"""Small keyword-only factories and owner-side reads for the reservation tests."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.auth.principal import Principal, Role
from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import create_item, stock
from tests.location.factories import create_location

PROBLEMS = "https://shelfkeeper.dev/problems/"
RESERVATION_TABLES = ("reservation", "reservation_line")


def reservations_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/reservations"


def reservation_url(tenant: str, reservation_id: str) -> str:
    return f"/api/v1/{tenant}/reservations/{reservation_id}"


def clerk(tenant: str) -> Principal:
    """The principal of a clerk of `tenant`, for service-level calls."""
    return Principal(
        subject="tester", tenant_id=tenant, roles=frozenset({Role.CLERK}), credential="jwt"
    )


async def place(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    code: str,
    priority: int = 0,
    active: bool = True,
) -> str:
    """A location (as the tenant's admin); returns its id."""
    created = await create_location(
        client, world, tenant=tenant, code=code, name=code, priority=priority, active=active
    )
    location_id: str = created["id"]
    return location_id


async def stocked_item(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    sku: str,
    on_hand: dict[str, int],
    **fields: Any,
) -> tuple[str, str]:
    """An item with one variant and `on_hand` units per location id: (item id, variant id)."""
    item = await create_item(client, world, tenant=tenant, sku=sku, name=sku, **fields)
    for location_id, quantity in on_hand.items():
        await stock(
            client,
            world,
            tenant=tenant,
            item_id=item["id"],
            operation="add",
            quantity=quantity,
            location_id=location_id,
        )
    return item["id"], item["variants"][0]["id"]


async def hold(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    lines: list[dict[str, Any]],
    ttl_seconds: int = 600,
    role: str = "clerk",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a reservation; returns the raw response."""
    return await client.post(
        reservations_url(tenant),
        json={"lines": lines, "ttl_seconds": ttl_seconds},
        headers=headers if headers is not None else world.headers(tenant, role),
    )


async def held(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    lines: list[dict[str, Any]],
    ttl_seconds: int = 600,
) -> dict[str, Any]:
    """A reservation that must succeed; returns its body."""
    response = await hold(client, world, tenant=tenant, lines=lines, ttl_seconds=ttl_seconds)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def expire(owner: Connection, *, tenant: str, reservation_id: str) -> None:
    """Move the hold's expiry into the past (as the owner), without sweeping it."""
    await owner.execute(
        "UPDATE reservation SET expires_at = now() - interval '1 second' "
        "WHERE tenant_id = $1 AND id = $2::uuid",
        tenant,
        reservation_id,
    )


async def stored_status(owner: Connection, *, tenant: str, reservation_id: str) -> str:
    status: str = await owner.fetchval(
        "SELECT status FROM reservation WHERE tenant_id = $1 AND id = $2::uuid",
        tenant,
        reservation_id,
    )
    return status


async def reservation_rows(owner: Connection, *, tenant: str) -> dict[str, list[dict[str, Any]]]:
    """Every reservation row of `tenant`, table by table (equal snapshots: nothing written)."""
    snapshot: dict[str, list[dict[str, Any]]] = {}
    for table in RESERVATION_TABLES:
        rows = await owner.fetch(
            f"SELECT * FROM {table} AS t WHERE tenant_id = $1 ORDER BY t::text", tenant
        )
        snapshot[table] = [dict(row) for row in rows]
    return snapshot


async def movements(owner: Connection, *, tenant: str) -> list[tuple[str, int, str, str | None]]:
    """`(operation, quantity, reason, reference)` of every movement, oldest first."""
    rows = await owner.fetch(
        "SELECT operation, quantity, reason, reference FROM stock_movement "
        "WHERE tenant_id = $1 ORDER BY created_at, level_version",
        tenant,
    )
    return [(row["operation"], row["quantity"], row["reason"], row["reference"]) for row in rows]
