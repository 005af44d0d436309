"""Tenant request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

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
    unpaid_order_expiry_minutes: int | None = Field(
        default=None,
        strict=True,
        ge=1,
        le=525_600,
        description="Cancel a pending order with nothing paid this many minutes after it was "
        "placed (its stock released, actor `system`); unset: never.",
    )


RESERVED_TENANT_IDS = frozenset({"tenants", "openapi", "docs", "admin", "platform"})
"""Ids that are, or may become, path segments of their own under `/api/v1`."""


class TenantCreate(RequestModel):
    id: str = Field(
        pattern=TENANT_ID_PATTERN,
        description="Slug; immutable. `tenants` and a few other words are reserved.",
        examples=["acme-home"],
    )
    name: str = Field(min_length=1, max_length=200, examples=["Acme Home Goods"])
    settings: TenantSettings = Field(default_factory=TenantSettings)

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_TENANT_IDS:
            raise ValueError(f"`{value}` is reserved")
        return value


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
