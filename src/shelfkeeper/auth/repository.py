"""SQL for API keys. Every statement runs with the key's tenant bound (RLS)."""

from __future__ import annotations

from uuid import UUID

from shelfkeeper.db.database import Connection, Record

COLUMNS = "id, name, role, key_prefix, created_by, created_at, revoked_at"


async def insert(
    db: Connection,
    *,
    tenant_id: str,
    name: str,
    role: str,
    key_hash: str,
    key_prefix: str,
    created_by: str,
) -> Record:
    row = await db.fetchrow(
        f"""
        INSERT INTO api_key (tenant_id, name, role, key_hash, key_prefix, created_by)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {COLUMNS}
        """,
        tenant_id,
        name,
        role,
        key_hash,
        key_prefix,
        created_by,
    )
    assert row is not None
    return row


async def find_active_by_hash(db: Connection, *, tenant_id: str, key_hash: str) -> Record | None:
    return await db.fetchrow(
        """
        SELECT id, role FROM api_key
        WHERE tenant_id = $1 AND key_hash = $2 AND revoked_at IS NULL
        """,
        tenant_id,
        key_hash,
    )


async def list_active(db: Connection, *, tenant_id: str) -> list[Record]:
    return await db.fetch(
        f"""
        SELECT {COLUMNS} FROM api_key
        WHERE tenant_id = $1 AND revoked_at IS NULL
        ORDER BY created_at, id
        """,
        tenant_id,
    )


async def revoke(db: Connection, *, tenant_id: str, key_id: UUID) -> bool:
    status = await db.execute(
        """
        UPDATE api_key SET revoked_at = now()
        WHERE tenant_id = $1 AND id = $2 AND revoked_at IS NULL
        """,
        tenant_id,
        key_id,
    )
    return status != "UPDATE 0"
