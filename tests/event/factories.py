"""Helpers for the event tests."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType


def events_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/events"


async def record(database: Database, *, tenant: str, subject: str = "inventory/1") -> None:
    async with database.tenant_transaction(tenant) as db:
        await event_service.record(
            db, tenant_id=tenant, type=EventType.INVENTORY_UPDATED, subject=subject, data={}
        )


async def sequences(owner: Connection, *, tenant: str) -> dict[str, int | None]:
    """Every event of the tenant: subject → sequence (NULL while not relayed)."""
    rows = await owner.fetch("SELECT subject, sequence FROM event WHERE tenant_id = $1", tenant)
    return {row["subject"]: row["sequence"] for row in rows}


async def poll(
    client: httpx.AsyncClient, *, tenant: str, headers: dict[str, str], after: int = 0
) -> dict[str, Any]:
    response = await client.get(events_url(tenant), params={"after": after}, headers=headers)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page
