"""`/api/v1/{tenantId}/api-keys`: create (secret shown once), list, revoke."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter

from shelfkeeper.auth import service
from shelfkeeper.auth.dependencies import TENANT_SCOPED_PROBLEMS, Administrator, TenantSession
from shelfkeeper.auth.schemas import ApiKey, ApiKeyCreate, ApiKeyCreated
from shelfkeeper.kit.pagination import Page
from shelfkeeper.kit.problems import problem_responses
from shelfkeeper.kit.routing import TransactionalRoute

router = APIRouter(
    prefix="/{tenant_id}/api-keys",
    tags=["API keys"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)


@router.post("", status_code=201, summary="Create an API key")
async def create_api_key(
    body: ApiKeyCreate, principal: Administrator, db: TenantSession
) -> ApiKeyCreated:
    """Create a key for this tenant. The secret `key` is in this response only."""
    return await service.create(db, principal, body=body)


@router.get("", summary="List active API keys")
async def list_api_keys(principal: Administrator, db: TenantSession) -> Page[ApiKey]:
    """Every key not revoked, oldest first (a tenant has few; one page holds them all)."""
    return Page(data=await service.list_keys(db, principal), next_cursor=None)


@router.delete(
    "/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    responses=problem_responses(service.ApiKeyNotFound),
)
async def revoke_api_key(key_id: UUID, principal: Administrator, db: TenantSession) -> None:
    """Revoke at once: the next request with this key gets 401."""
    await service.revoke(db, principal, key_id=key_id)
