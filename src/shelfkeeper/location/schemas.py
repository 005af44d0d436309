"""Location request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from shelfkeeper.kit.schemas import PatchModel, RequestModel

LocationKind = Literal["warehouse", "store"]
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class Address(RequestModel):
    line1: str | None = Field(default=None, max_length=200, examples=["1 Dock Road"])
    line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100, examples=["Rotterdam"])
    region: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20, examples=["3011 AA"])
    country: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166-1 alpha-2 code.",
        examples=["NL"],
    )


class LocationCreate(RequestModel):
    code: str = Field(
        pattern=CODE_PATTERN,
        description="Short code, unique in the tenant (letters, digits, `.`, `_`, `-`).",
        examples=["WH-RTM"],
    )
    name: str = Field(min_length=1, max_length=200, examples=["Rotterdam warehouse"])
    kind: LocationKind = Field(examples=["warehouse"])
    address: Address | None = None
    active: bool = Field(default=True, strict=True)
    priority: int = Field(
        default=0,
        strict=True,
        ge=-1000,
        le=1000,
        description="Allocation preference: higher is tried first when an order line "
        "names no location.",
    )


class LocationUpdate(PatchModel):
    """Partial update; `address: null` clears the address."""

    code: str | None = Field(default=None, pattern=CODE_PATTERN)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    kind: LocationKind | None = None
    address: Address | None = None
    active: bool | None = Field(default=None, strict=True)
    priority: int | None = Field(default=None, strict=True, ge=-1000, le=1000)

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"address"})


class Location(BaseModel):
    id: UUID
    code: str
    name: str
    kind: LocationKind
    address: Address | None
    active: bool
    priority: int
    version: int
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime
