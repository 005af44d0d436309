"""Webhook request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

import httpx
from pydantic import BaseModel, Field, field_validator

from shelfkeeper.event.schemas import EventType
from shelfkeeper.kit import outbound
from shelfkeeper.kit.schemas import PatchModel, RequestModel

DeliveryStatus = Literal["pending", "succeeded", "failed"]
URL_DESCRIPTION = (
    "Where to POST events: `http` or `https`, no credentials, no fragment, at most 2048 "
    "characters. Its host must be (or resolve only to) public addresses (422 otherwise)."
)


def _vet_url(value: str | None) -> str | None:
    if value is not None:
        outbound.parse(value)  # InvalidTarget is a ValueError: a 422 on the field
        try:
            httpx.URL(value)
        except httpx.InvalidURL as error:
            raise ValueError(str(error)) from error
    return value


def _distinct(values: list[EventType] | None) -> list[EventType] | None:
    return None if values is None else list(dict.fromkeys(values))


class WebhookCreate(RequestModel):
    url: str = Field(
        min_length=1,
        max_length=outbound.MAX_URL_LENGTH,
        description=URL_DESCRIPTION,
        examples=["https://hooks.example.com/shelfkeeper"],
    )
    events: list[EventType] = Field(
        min_length=1,
        max_length=64,
        description="The event types to deliver (at least one).",
        examples=[["OrderPlaced", "OrderShipped"]],
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: bool = Field(default=True, strict=True)

    _url = field_validator("url")(_vet_url)
    _events = field_validator("events")(_distinct)


class WebhookUpdate(PatchModel):
    """Partial update; `{"enabled": true}` re-enables an endpoint that was disabled after
    failing, and starts its count of failures afresh. `description: null` clears it."""

    url: str | None = Field(
        default=None, min_length=1, max_length=outbound.MAX_URL_LENGTH, description=URL_DESCRIPTION
    )
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(default=None, strict=True)

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"description"})

    _url = field_validator("url")(_vet_url)
    _events = field_validator("events")(_distinct)


class Webhook(BaseModel):
    id: UUID
    url: str
    events: list[EventType]
    description: str | None
    enabled: bool
    consecutive_failures: int = Field(
        description="Deliveries in a row that failed for good (their retry schedule ran "
        "out) with no successful delivery since; at `SHELFKEEPER_WEBHOOK_DISABLE_AFTER_"
        "FAILURES` the endpoint is disabled."
    )
    disabled_at: datetime | None = Field(
        description="When the endpoint was disabled for failing (null otherwise)."
    )
    version: int
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime


class WebhookCreated(Webhook):
    secret: str = Field(
        description="The signing secret (`whsec_` + base64 key), shown only in this response. "
        "Verify each delivery's `webhook-signature` with it (Standard Webhooks).",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class DeliveryAttempt(BaseModel):
    attempt: int = Field(description="1 for the first attempt, counting redeliveries on.")
    started_at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered.")
    latency_seconds: float
    error: str | None = Field(description="Why the attempt failed, if it did.")


class WebhookDelivery(BaseModel):
    id: UUID
    webhook_id: UUID
    event_id: UUID = Field(
        description="The event's id, sent as the `webhook-id` header (the same on every "
        "attempt and redelivery, so a receiver can drop duplicates)."
    )
    event_type: EventType
    event_sequence: int
    subject: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None = Field(
        description="When the next attempt is due (null unless `pending`)."
    )
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    updated_at: datetime
    attempts: list[DeliveryAttempt] = Field(description="Every attempt, oldest first.")
