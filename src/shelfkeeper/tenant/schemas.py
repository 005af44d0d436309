"""Tenant request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from shelfkeeper.kit.schemas import PatchModel, RequestModel

TENANT_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
TenantStatus = Literal["active", "suspended"]


class RateLimit(RequestModel):
    requests_per_second: int = Field(strict=True, ge=0, le=1_000_000, examples=[100])
    burst: int = Field(strict=True, ge=0, le=10_000_000, examples=[200])


class TenantSettings(RequestModel):
    """Per-tenant settings; each unset one falls back to the service default."""

    rate_limit: RateLimit | None = Field(
        default=None, description="Request rate limit; unset uses the service default."
    )
    low_stock_threshold: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=1_000_000_000,
        description="Default low-stock threshold for levels and items that set none.",
    )


class TenantCreate(RequestModel):
    id: str = Field(pattern=TENANT_ID_PATTERN, examples=["acme-home"])
    name: str = Field(min_length=1, max_length=200, examples=["Acme Home Goods"])
    settings: TenantSettings = Field(default_factory=TenantSettings)


class TenantUpdate(PatchModel):
    """Partial update. `settings` keys sent replace the stored ones; others are kept."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    settings: TenantSettings | None = None
    status: TenantStatus | None = Field(
        default=None, description="`suspended` refuses every tenant-scoped request."
    )

    nullable_fields: ClassVar[frozenset[str]] = frozenset()


class Tenant(BaseModel):
    id: str
    name: str
    settings: TenantSettings
    status: TenantStatus
    version: int
    created_at: datetime
    updated_at: datetime
