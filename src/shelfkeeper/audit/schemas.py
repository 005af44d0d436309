"""Audit trail response models."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


class AuditEntry(BaseModel):
    """One change, as recorded in the transaction that made it."""

    id: UUID
    occurred_at: datetime
    actor: str = Field(
        description="`user:<sub>`, `api_key:<key id>`, `system` (jobs, signed callbacks), "
        "or `cli:<os user>` (the command line, in the platform trail)."
    )
    role: str | None = Field(description="The actor's role; null for `system`.")
    action: str = Field(
        description="`create`, `update`, `delete`, `adjust_stock`, `change_status`, ... or, "
        "for a request no service described, the operation's name (`create_api_key`).",
        examples=["update"],
    )
    entity_type: str = Field(examples=["location"])
    entity_id: str | None = Field(examples=["0b1c5c6e-3f47-4c8f-9a51-2d4e3c1f0a77"])
    before: dict[str, Any] | None = Field(
        description="The changed fields before the change (redacted); null for a creation."
    )
    after: dict[str, Any] | None = Field(
        description="The changed fields after the change (redacted); null for a deletion."
    )
    request_id: str | None = Field(description="The request's `X-Request-ID`; null for jobs.")
    client_address: str | None = Field(description="The client's IP address; null for jobs.")


class PlatformAuditEntry(AuditEntry):
    """One platform operation (tenant lifecycle, export, the command line's mutations), as
    recorded in the transaction that made it; kept after the tenant is deleted."""

    tenant_id: str | None = Field(
        description="The tenant the operation concerned (it may no longer exist).",
        examples=["acme"],
    )
