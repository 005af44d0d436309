"""Small keyword-only factories for tenant tests."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Record
from tests.conftest import TenantWorld, new_tenant_id

TENANTS_URL = "/api/v1/tenants"

UNSET_SETTINGS = {
    "rate_limit": None,
    "low_stock_threshold": None,
    "unpaid_order_expiry_minutes": None,
}


def tenant_url(tenant_id: str) -> str:
    return f"{TENANTS_URL}/{tenant_id}"


def tenant_body(
    *, tenant_id: str | None = None, name: str = "Acme Home Goods", **extra: Any
) -> dict[str, Any]:
    return {"id": tenant_id or new_tenant_id(), "name": name, **extra}


async def create_tenant_through_api(
    client: httpx.AsyncClient, world: TenantWorld, **fields: Any
) -> dict[str, Any]:
    """Create a tenant as a platform operator; returns the response body."""
    response = await client.post(TENANTS_URL, json=tenant_body(**fields), headers=world.platform)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def tenant_row(owner: Connection, *, tenant_id: str) -> Record | None:
    return await owner.fetchrow("SELECT * FROM tenant WHERE id = $1", tenant_id)
