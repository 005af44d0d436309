"""Helpers for the tests of inventory events, low-stock alerts, store clerks and `as_of`."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from uuid import UUID

import httpx

from shelfkeeper.auth.tokens import issue_token
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld, bearer

UPDATED = "InventoryUpdated"
LOW_STOCK = "InventoryLowStock"


def alerts_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/inventory/alerts"


def level_url(tenant: str, item_id: str, location_id: str) -> str:
    return f"/api/v1/{tenant}/inventory/{item_id}/levels/{location_id}"


def item_stock_url(tenant: str, item_id: str) -> str:
    return f"/api/v1/{tenant}/inventory/{item_id}/stock"


async def events_of(
    owner: Connection, *, tenant: str, type: str | None = None
) -> list[dict[str, Any]]:
    """The tenant's outbox rows (`type`, `subject`, `data`), oldest first."""
    rows = await owner.fetch(
        "SELECT type, subject, data, sequence FROM event "
        "WHERE tenant_id = $1 AND ($2::text IS NULL OR type = $2) ORDER BY time, id",
        tenant,
        type,
    )
    assert all(row["sequence"] is None for row in rows)
    return [{"type": row["type"], "subject": row["subject"], "data": row["data"]} for row in rows]


async def event_count(owner: Connection, *, tenant: str, type: str | None = None) -> int:
    return len(await events_of(owner, tenant=tenant, type=type))


async def set_tenant_threshold(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, threshold: int | None
) -> None:
    response = await client.patch(
        f"/api/v1/tenants/{tenant}",
        json={"settings": {"low_stock_threshold": threshold}},
        headers=world.platform,
    )
    assert response.status_code == 200, response.text


async def set_level_threshold(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    item_id: str,
    location_id: str,
    threshold: int | None,
    role: str = "clerk",
    **fields: Any,
) -> httpx.Response:
    return await client.patch(
        level_url(tenant, item_id, location_id),
        json={"low_stock_threshold": threshold, **fields},
        headers=world.headers(tenant, role),
    )


def store_clerk(
    settings: Settings, *, tenant: str, location_ids: Collection[str], role: str = "clerk"
) -> dict[str, str]:
    """Headers of a token limited to `location_ids` (a store clerk's)."""
    token = issue_token(
        settings,
        subject="store-clerk",
        tenant_id=tenant,
        roles=[role],
        location_ids=[UUID(location_id) for location_id in location_ids],
    )
    return bearer(token)
