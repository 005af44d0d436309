"""Events are recorded in the transaction of the change they describe."""

from __future__ import annotations

import asyncpg
import pytest

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from tests.conftest import TenantWorld


async def events_of(owner: Connection, tenant: str) -> list[tuple[str, str, dict[str, object]]]:
    rows = await owner.fetch(
        "SELECT type, subject, data, sequence FROM event WHERE tenant_id = $1 ORDER BY time",
        tenant,
    )
    assert all(row["sequence"] is None for row in rows)
    return [(row["type"], row["subject"], row["data"]) for row in rows]


async def test_an_event_commits_with_its_transaction(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    async with database.tenant_transaction(world.a) as db:
        await event_service.record(
            db,
            tenant_id=world.a,
            type=EventType.INVENTORY_UPDATED,
            subject="inventory/1",
            data={"on_hand": 3},
        )

    assert await events_of(owner_connection, world.a) == [
        ("InventoryUpdated", "inventory/1", {"on_hand": 3})
    ]
    assert await events_of(owner_connection, world.b) == []


async def test_an_event_rolls_back_with_its_transaction(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    async def change_that_fails() -> None:
        async with database.tenant_transaction(world.a) as db:
            await event_service.record(
                db,
                tenant_id=world.a,
                type=EventType.ORDER_PLACED,
                subject="orders/1",
                data={},
            )
            raise RuntimeError("change failed")

    with pytest.raises(RuntimeError, match="change failed"):
        await change_that_fails()

    assert await events_of(owner_connection, world.a) == []


async def test_an_event_for_another_tenant_is_refused(
    world: TenantWorld, database: Database
) -> None:
    async def record_for_tenant_b() -> None:
        async with database.tenant_transaction(world.a) as db:
            await event_service.record(
                db,
                tenant_id=world.b,
                type=EventType.ORDER_PLACED,
                subject="orders/1",
                data={},
            )

    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await record_for_tenant_b()
