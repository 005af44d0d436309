"""SQL for `tenant_data_key`. Every statement filters by tenant; RLS stands behind each."""

from __future__ import annotations

from shelfkeeper.db.database import Connection, Record

COLUMNS = "version, wrapped_key, master_key"


async def current_key(db: Connection, *, tenant_id: str) -> Record | None:
    """The tenant's newest data key (the one new values are sealed under)."""
    return await db.fetchrow(
        f"""
        SELECT {COLUMNS} FROM tenant_data_key
        WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1
        """,
        tenant_id,
    )


async def key(db: Connection, *, tenant_id: str, version: int) -> Record | None:
    return await db.fetchrow(
        f"SELECT {COLUMNS} FROM tenant_data_key WHERE tenant_id = $1 AND version = $2",
        tenant_id,
        version,
    )


async def insert_key(
    db: Connection, *, tenant_id: str, version: int, wrapped_key: bytes, master_key: str
) -> Record | None:
    """Store a wrapped key; None when that version exists already (a concurrent first use
    stored its own: the caller reads that one)."""
    return await db.fetchrow(
        f"""
        INSERT INTO tenant_data_key (tenant_id, version, wrapped_key, master_key)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (tenant_id, version) DO NOTHING
        RETURNING {COLUMNS}
        """,
        tenant_id,
        version,
        wrapped_key,
        master_key,
    )


async def delete_keys(db: Connection, *, tenant_id: str) -> int:
    status = await db.execute("DELETE FROM tenant_data_key WHERE tenant_id = $1", tenant_id)
    return int(status.split()[-1])
