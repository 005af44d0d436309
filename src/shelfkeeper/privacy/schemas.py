"""Privacy request and response models."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field

from shelfkeeper.kit.schemas import RequestModel
from shelfkeeper.order.schemas import Email, Order, Return


class ErasureCreate(RequestModel):
    email: Email = Field(description="The customer's email (case and surrounding space ignored).")


class Erasure(BaseModel):
    """What an erasure changed."""

    orders: list[UUID] = Field(
        description="The orders whose customer was pseudonymised (their numbers, lines and "
        "totals stay)."
    )
    stored_responses_erased: int = Field(
        description="Stored `Idempotency-Key` responses that held the customer's data: a retry "
        "of their request now answers 410 `response-erased` (and does not act again)."
    )


class CustomerExport(BaseModel):
    """Everything held about one customer."""

    email: str
    generated_at: datetime
    orders: list[Order] = Field(
        description="The customer's orders, oldest first, with their customer data, shipping "
        "address, lines, payments and refunds."
    )
    returns: list[Return] = Field(description="The returns of those orders.")
