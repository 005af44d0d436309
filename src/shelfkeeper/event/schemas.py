"""Event types and the CloudEvents 1.0 envelope."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from pydantic import BaseModel, Field


class EventType(StrEnum):
    INVENTORY_UPDATED = "InventoryUpdated"
    INVENTORY_LOW_STOCK = "InventoryLowStock"
    ORDER_PLACED = "OrderPlaced"
    ORDER_UPDATED = "OrderUpdated"
    ORDER_PROCESSED = "OrderProcessed"
    ORDER_SHIPPED = "OrderShipped"
    ORDER_DELIVERED = "OrderDelivered"
    ORDER_CANCELLED = "OrderCancelled"
    RETURN_REQUESTED = "ReturnRequested"
    RETURN_RECEIVED = "ReturnReceived"
    RETURN_REJECTED = "ReturnRejected"
    REFUND_ISSUED = "RefundIssued"
    WEBHOOK_ENDPOINT_DISABLED = "WebhookEndpointDisabled"


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 JSON envelope with Shelfkeeper's extensions."""

    specversion: str = "1.0"
    id: UUID
    source: str = Field(examples=["/shelfkeeper/tenants/acme"])
    type: EventType
    time: datetime
    subject: str = Field(examples=["orders/6f1c..."])
    datacontenttype: str = "application/json"
    data: dict[str, Any]
    tenantid: str
    sequence: int | None = Field(
        description="Per-tenant, strictly increasing; assigned when the event is relayed."
    )


class EventPage(BaseModel):
    """Events after a cursor, in sequence order."""

    data: list[CloudEvent]
    next_cursor: int = Field(
        description="The `sequence` of the last event in `data`, or the `after` asked for "
        "when `data` is empty: pass it as `after` to continue. Never null (the event log "
        "has no end; an empty page means nothing newer has been relayed yet)."
    )
