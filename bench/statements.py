"""The statements of `read` and `adjust`, shared by the ceiling (`bench.load`, straight
through asyncpg) and the framework floor (`bench.floor`, the same statements behind a bare
FastAPI route): each calls the very repository functions the service calls, so the SQL of
the three sides cannot drift apart."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shelfkeeper.audit import repository as audit
from shelfkeeper.db.database import Record
from shelfkeeper.inventory import repository as inventory
from shelfkeeper.tenant import repository as tenant


async def read(connection: Any, *, tenant_id: str, item_id: UUID) -> Record | None:
    """`GET /inventory/{item_id}`: the tenant binding, then the item, read-only."""
    async with connection.transaction(readonly=True):
        await tenant.enter(connection, tenant_id)
        row: Record | None = await inventory.get_item(
            connection, tenant_id=tenant_id, item_id=item_id
        )
    return row


async def adjust(
    connection: Any, *, tenant_id: str, item_id: UUID, location_id: UUID, operation: str
) -> Record | None:
    """`PATCH /inventory/{item_id}/stock` by 1: what `inventory.service.adjust` issues (the
    tenant binding with its lookup, the variant resolution, the one conditional statement,
    and on a refusal the read that explains it), then the request's audit entry. Returns
    the changed level, or None when refused."""
    async with connection.transaction():
        await tenant.enter(connection, tenant_id)
        variants = await inventory.variants_of(connection, tenant_id=tenant_id, item_id=item_id)
        change = inventory.Change(
            variant_id=variants[0]["id"],
            location_id=location_id,
            operation=operation,
            quantity=1,
            reason="sale" if operation == "reserve" else "received",
            note=None,
            reference=None,
            expected_version=None,
            allow_backorder=variants[0]["allow_backorder"],
        )
        row: Record | None = await inventory.apply(
            connection, tenant_id=tenant_id, change=change, actor="user:bench"
        )
        if row is None:
            await inventory.get_level(
                connection,
                tenant_id=tenant_id,
                variant_id=change.variant_id,
                location_id=location_id,
            )
            return None
        await audit_entry(
            connection,
            tenant_id=tenant_id,
            entity_id=str(item_id),
            action="stock.adjusted",
            entity="stock_level",
            operation=operation,
        )
    return row


async def audit_entry(
    connection: Any, *, tenant_id: str, entity_id: str, action: str, entity: str, operation: str
) -> None:
    """The service's mutating request transaction ends with its audit entry."""
    await audit.insert(
        connection,
        tenant_id=tenant_id,
        entries=[
            audit.NewEntry(
                actor="user:bench",
                role="admin",
                action=action,
                entity_type=entity,
                entity_id=entity_id,
                before=None,
                after={"operation": operation, "quantity": 1},
                request_id=None,
                client_address="127.0.0.1",
            )
        ],
    )
