"""Small keyword-only factories for location tests (used by the kit tests too)."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Record
from tests.conftest import TenantWorld


def location_body(
    *, code: str = "WH-1", name: str = "Main warehouse", kind: str = "warehouse", **extra: Any
) -> dict[str, Any]:
    return {"code": code, "name": name, "kind": kind, **extra}


def locations_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/locations"


def location_url(tenant: str, location_id: str) -> str:
    return f"/api/v1/{tenant}/locations/{location_id}"


async def create_location(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, **fields: Any
) -> dict[str, Any]:
    """Create a location through the API as the tenant's admin; returns the response body."""
    response = await client.post(
        locations_url(tenant), json=location_body(**fields), headers=world.headers(tenant)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def location_rows(owner: Connection, *, tenant: str) -> list[Record]:
    """Every location row of `tenant`, as the database owner sees them (oldest first)."""
    return await owner.fetch(
        "SELECT * FROM location WHERE tenant_id = $1 ORDER BY created_at, id", tenant
    )


async def location_row(owner: Connection, *, tenant: str, location_id: str) -> Record | None:
    return await owner.fetchrow(
        "SELECT * FROM location WHERE tenant_id = $1 AND id = $2::uuid", tenant, location_id
    )


async def location_count(owner: Connection, *, tenant: str) -> int:
    count: int = await owner.fetchval("SELECT count(*) FROM location WHERE tenant_id = $1", tenant)
    return count
