"""API key request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from shelfkeeper.kit.schemas import RequestModel

TenantRoleName = Literal["admin", "clerk", "viewer"]


class ApiKeyCreate(RequestModel):
    name: str = Field(min_length=1, max_length=200, examples=["warehouse scanner"])
    role: TenantRoleName = Field(examples=["clerk"])


class ApiKey(BaseModel):
    id: UUID
    name: str
    role: TenantRoleName
    prefix: str = Field(description="The key's first characters, to recognise it by.")
    created_by: str
    created_at: datetime


class ApiKeyCreated(ApiKey):
    key: str = Field(
        description="The secret key. Shown only in this response; store it now.",
        examples=["sk_acme_3q2Yh..."],
    )
