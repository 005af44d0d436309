"""Reservation (hold) request and response models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self
from uuid import UUID

from pydantic import BaseModel, Field, model_validator

from shelfkeeper.inventory.schemas import Quantity, Sku
from shelfkeeper.kit.schemas import RequestModel

MAX_TTL_SECONDS = 7 * 86_400
DEFAULT_TTL_SECONDS = 900

TtlSeconds = Annotated[
    int,
    Field(
        strict=True,
        ge=1,
        le=MAX_TTL_SECONDS,
        description="How long the hold lasts, in seconds (1 to 604800, seven days).",
        examples=[900],
    ),
]


class ReservationStatus(StrEnum):
    HELD = "held"
    RELEASED = "released"
    EXPIRED = "expired"
    CONVERTED = "converted"


class ReservationLineCreate(RequestModel):
    variant_id: UUID | None = None
    sku: Sku | None = Field(default=None, description="A variant's SKU.")
    quantity: Quantity
    location_id: UUID | None = Field(
        default=None,
        description="Take the units here (an active location). Omitted: the server picks one "
        "active location that can fill the line (highest `priority`, then most available), "
        "else splits it across locations in that order.",
    )

    @model_validator(mode="after")
    def _names_a_variant(self) -> Self:
        if self.variant_id is None and self.sku is None:
            raise ValueError("give `variant_id` or `sku`")
        return self


class ReservationCreate(RequestModel):
    lines: list[ReservationLineCreate] = Field(min_length=1, max_length=100)
    ttl_seconds: TtlSeconds = DEFAULT_TTL_SECONDS


class ReservationExtend(RequestModel):
    ttl_seconds: TtlSeconds


class ReservationLine(BaseModel):
    """Units of one variant held at one location (a line without a location may have been
    split into several of these)."""

    variant_id: UUID
    sku: str
    location_id: UUID
    quantity: int


class Reservation(BaseModel):
    id: UUID
    status: ReservationStatus = Field(
        description="`held` until released, converted into an order, or expired; a hold "
        "past its `expires_at` shows `expired` at once."
    )
    expires_at: datetime
    lines: list[ReservationLine]
    reference: str | None = Field(
        description="What the hold was converted into (e.g. `order:<id>`); null otherwise."
    )
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
