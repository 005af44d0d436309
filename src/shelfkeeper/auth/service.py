"""API key rules: creation (secret shown once), listing, revocation, authentication."""

from __future__ import annotations

from uuid import UUID

from shelfkeeper.auth import api_key, repository
from shelfkeeper.auth.principal import Principal, Role
from shelfkeeper.auth.schemas import ApiKey, ApiKeyCreate, ApiKeyCreated
from shelfkeeper.db.database import Connection, Record, bind_tenant
from shelfkeeper.kit.problems import NotFound


class ApiKeyNotFound(NotFound):
    title = "API key not found"


def _api_key(row: Record) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        role=row["role"],
        prefix=row["key_prefix"],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


async def create(db: Connection, principal: Principal, *, body: ApiKeyCreate) -> ApiKeyCreated:
    assert principal.tenant_id is not None
    generated = api_key.generate(principal.tenant_id)
    row = await repository.insert(
        db,
        tenant_id=principal.tenant_id,
        name=body.name,
        role=body.role,
        key_hash=generated.hash,
        key_prefix=generated.shown_prefix,
        created_by=principal.actor,
    )
    return ApiKeyCreated(**_api_key(row).model_dump(), key=generated.key)


async def list_keys(db: Connection, principal: Principal) -> list[ApiKey]:
    assert principal.tenant_id is not None
    rows = await repository.list_active(db, tenant_id=principal.tenant_id)
    return [_api_key(row) for row in rows]


async def revoke(db: Connection, principal: Principal, *, key_id: UUID) -> None:
    """Revoke a key at once. Raises ApiKeyNotFound (also for an already revoked key)."""
    assert principal.tenant_id is not None
    if not await repository.revoke(db, tenant_id=principal.tenant_id, key_id=key_id):
        raise ApiKeyNotFound()


async def authenticate(db: Connection, token: str) -> Principal | None:
    """The principal of a presented API key, or None if it is not a live key.

    Binds the transaction to the key's own tenant for the lookup (RLS applies).
    """
    presented = api_key.parse(token)
    if presented is None:
        return None
    await bind_tenant(db, presented.tenant_id)
    row = await repository.find_active_by_hash(
        db, tenant_id=presented.tenant_id, key_hash=presented.hash
    )
    if row is None:
        return None
    return Principal(
        subject=str(row["id"]),
        tenant_id=presented.tenant_id,
        roles=frozenset({Role(row["role"])}),
        credential="api_key",
    )
