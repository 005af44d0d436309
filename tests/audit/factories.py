"""Reading the audit trail in tests: through the API, and as the database owner."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld


def audit_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/audit-log"


async def audit_log(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, **params: Any
) -> dict[str, Any]:
    """One page of the tenant's trail, read by its admin (must succeed)."""
    response = await client.get(audit_url(tenant), params=params, headers=world.headers(tenant))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def entries(owner: Connection, *, tenant: str) -> list[dict[str, Any]]:
    """Every entry of `tenant`, oldest first, as the database owner sees them."""
    rows = await owner.fetch(
        "SELECT * FROM audit_entry WHERE tenant_id = $1 ORDER BY occurred_at, id", tenant
    )
    return [dict(row) for row in rows]


async def entry_count(owner: Connection, *, tenant: str) -> int:
    count: int = await owner.fetchval(
        "SELECT count(*) FROM audit_entry WHERE tenant_id = $1", tenant
    )
    return count
