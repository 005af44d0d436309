"""SQL for locations. Every statement filters by tenant, and RLS stands behind it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.kit.pagination import Keyset

COLUMNS = (
    "id, code, name, kind, address, active, priority, version, "
    "created_by, updated_by, created_at, updated_at"
)
UPDATABLE = frozenset({"code", "name", "kind", "address", "active", "priority"})


class DuplicateCode(Exception):
    pass


class StillReferenced(Exception):
    pass


async def insert(db: Connection, *, tenant_id: str, values: dict[str, Any], actor: str) -> Record:
    try:
        row = await db.fetchrow(
            f"""
            INSERT INTO location
                (tenant_id, code, name, kind, address, active, priority, created_by, updated_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
            RETURNING {COLUMNS}
            """,
            tenant_id,
            values["code"],
            values["name"],
            values["kind"],
            values["address"],
            values["active"],
            values["priority"],
            actor,
        )
    except asyncpg.UniqueViolationError as error:
        raise DuplicateCode(values["code"]) from error
    assert row is not None
    return row


async def get(db: Connection, *, tenant_id: str, location_id: UUID) -> Record | None:
    return await db.fetchrow(
        f"SELECT {COLUMNS} FROM location WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        location_id,
    )


async def list_page(
    db: Connection,
    *,
    tenant_id: str,
    keyset: Keyset,
    kind: str | None,
    active: bool | None,
) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {COLUMNS} FROM location
        WHERE tenant_id = $1
          AND ($2::text IS NULL OR kind = $2)
          AND ($3::boolean IS NULL OR active = $3)
          AND {keyset.condition}
        ORDER BY {keyset.order_by}
        LIMIT {keyset.limit + 1}
        """,
        tenant_id,
        kind,
        active,
        *keyset.arguments,
    )


async def update(
    db: Connection,
    *,
    tenant_id: str,
    location_id: UUID,
    changes: dict[str, Any],
    expected_version: int | None,
    actor: str,
) -> Record | None:
    """Apply `changes`; None when the location is missing or not at `expected_version`."""
    assignments = [f"{column} = ${index}" for index, column in enumerate(changes, start=5)]
    assert set(changes) <= UPDATABLE
    try:
        return await db.fetchrow(
            f"""
            UPDATE location SET
                {"".join(assignment + ", " for assignment in assignments)}
                version = version + 1, updated_by = $4, updated_at = now()
            WHERE tenant_id = $1 AND id = $2 AND ($3::int IS NULL OR version = $3)
            RETURNING {COLUMNS}
            """,
            tenant_id,
            location_id,
            expected_version,
            actor,
            *changes.values(),
        )
    except asyncpg.UniqueViolationError as error:
        raise DuplicateCode(changes.get("code")) from error


async def delete(
    db: Connection, *, tenant_id: str, location_id: UUID, expected_version: int | None
) -> bool:
    """Delete; False when missing or not at `expected_version`.

    Raises StillReferenced when stock or history still points at the location.
    """
    try:
        status = await db.execute(
            """
            DELETE FROM location
            WHERE tenant_id = $1 AND id = $2 AND ($3::int IS NULL OR version = $3)
            """,
            tenant_id,
            location_id,
            expected_version,
        )
    except asyncpg.ForeignKeyViolationError as error:
        raise StillReferenced() from error
    return status != "DELETE 0"


async def priorities(db: Connection, *, tenant_id: str) -> list[Record]:
    return await db.fetch(
        "SELECT id, priority, active FROM location WHERE tenant_id = $1", tenant_id
    )
