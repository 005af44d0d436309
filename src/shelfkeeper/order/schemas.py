"""Order request and response models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    model_validator,
)

from shelfkeeper.inventory.schemas import Quantity, Sku
from shelfkeeper.kit import money
from shelfkeeper.kit.schemas import PatchModel, RequestModel
from shelfkeeper.order.lifecycle import OrderStatus

MAX_LINES = 100


class PaymentStatus(StrEnum):
    UNPAID = "unpaid"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


def _decimal_text(value: Any) -> Any:
    """Money arrives as a decimal string: a JSON number may already have lost digits."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError('give money as a decimal string, e.g. "19.99"')
    return value


def _known_currency(code: str) -> str:
    if not money.is_known(code):
        raise ValueError(f"unknown currency; use one of {', '.join(sorted(money.MINOR_UNITS))}")
    return code


CurrencyCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code; one of " + ", ".join(sorted(money.MINOR_UNITS)) + ".",
        examples=["USD"],
    ),
    AfterValidator(_known_currency),
]
Price = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    Field(
        ge=0,
        max_digits=15,
        decimal_places=4,
        description="A decimal string with no more decimals than the currency's minor unit.",
        examples=["19.99"],
    ),
]
Amount = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    Field(
        gt=0,
        max_digits=19,
        decimal_places=4,
        description="A decimal string with no more decimals than the currency's minor unit.",
        examples=["19.99"],
    ),
]
MoneyText = Annotated[
    Decimal,
    PlainSerializer(lambda value: format(value, "f"), return_type=str),
    Field(description="A decimal string in the order's currency.", examples=["19.99"]),
]
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+$",
        examples=["ada@example.com"],
    ),
]


def _bounded_metadata(value: dict[str, str]) -> dict[str, str]:
    if len(value) > 50:
        raise ValueError("at most 50 metadata keys")
    for key, item in value.items():
        if not 1 <= len(key) <= 40 or len(item) > 500:
            raise ValueError("metadata keys are 1 to 40 characters, values at most 500")
    return value


Metadata = Annotated[
    dict[str, str],
    AfterValidator(_bounded_metadata),
    Field(
        description="Your own key-value pairs (up to 50; keys up to 40 characters, string "
        "values up to 500).",
        examples=[{"channel": "web"}],
    ),
]
Notes = Annotated[str, Field(max_length=5000)]


class Customer(RequestModel):
    email: Email
    name: str | None = Field(default=None, max_length=200, examples=["Ada Lovelace"])
    phone: str | None = Field(default=None, max_length=50, examples=["+31 20 123 4567"])


class ShippingAddress(RequestModel):
    name: str | None = Field(default=None, max_length=200, examples=["Ada Lovelace"])
    line1: str | None = Field(default=None, max_length=200, examples=["1 Dock Road"])
    line2: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100, examples=["Rotterdam"])
    region: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20, examples=["3011 AA"])
    country: str | None = Field(
        default=None, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 code.", examples=["NL"]
    )


class OrderLineCreate(RequestModel):
    """One line: what (a variant, by `variant_id`, `sku` or `item_id`), how many, at what
    price, and optionally where from."""

    item_id: UUID | None = Field(
        default=None, description="The item; enough on its own when it has one variant."
    )
    sku: Sku | None = Field(
        default=None, description="A variant's SKU, or an item's when it has one variant."
    )
    variant_id: UUID | None = None
    quantity: Quantity
    unit_price: Price | None = Field(
        default=None,
        description="Defaults to the variant's `price`; no more decimals than the currency's "
        "minor unit.",
    )
    location_id: UUID | None = Field(
        default=None,
        description="Reserve the units here (an active location). Omitted: the server picks "
        "one active location that can fill the line (highest `priority`, then most "
        "available), else splits the line across locations in that order.",
    )

    @model_validator(mode="after")
    def _names_something(self) -> Self:
        if self.item_id is None and self.sku is None and self.variant_id is None:
            raise ValueError("give `variant_id`, `sku` or `item_id`")
        return self


class OrderCreate(RequestModel):
    customer: Customer
    shipping_address: ShippingAddress | None = None
    reservation_id: UUID | None = Field(
        default=None,
        description="A held reservation whose units the order takes over (it becomes "
        "`converted`). The lines must ask for exactly the units it holds of each variant.",
    )
    currency: CurrencyCode
    lines: list[OrderLineCreate] = Field(min_length=1, max_length=MAX_LINES)
    notes: Notes | None = None
    metadata: Metadata = Field(default_factory=dict)


class ShipmentCreate(RequestModel):
    carrier: str = Field(min_length=1, max_length=100, examples=["PostNL"])
    tracking_number: str = Field(min_length=1, max_length=200, examples=["3SABCD0123456789"])
    provider: str = Field(
        default="manual",
        pattern=r"^[a-z][a-z0-9_-]{0,39}$",
        description="The shipping provider (`manual`: booked by hand).",
    )


class OrderUpdate(PatchModel):
    """A status change, details, or both. Fields not sent are kept."""

    status: OrderStatus | None = Field(
        default=None,
        description="The next status: pending → processed → shipped → delivered; canceled "
        "from pending or processed. Anything else → 409 `invalid-transition`.",
    )
    shipment: ShipmentCreate | None = Field(
        default=None,
        description="With `status: shipped` (or on a shipped order, to correct it).",
    )
    notes: Notes | None = None
    metadata: Metadata | None = None
    shipping_address: ShippingAddress | None = None

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"notes", "shipping_address"})

    @model_validator(mode="after")
    def _shipment_goes_with_shipping(self) -> Self:
        if self.shipment is not None and self.status not in (None, OrderStatus.SHIPPED):
            raise ValueError("`shipment` goes with `status: shipped` (or alone)")
        return self


class OrderLineUpdate(PatchModel):
    """A line's new quantity, unit price, or both."""

    quantity: Quantity | None = None
    unit_price: Price | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("give `quantity`, `unit_price` or both")
        return self


class PaymentCreate(RequestModel):
    amount: Amount
    provider: str = Field(
        default="manual",
        pattern=r"^[a-z][a-z0-9_-]{0,39}$",
        description="The payment provider (`manual`: money taken outside Shelfkeeper).",
    )
    reference: str | None = Field(
        default=None, max_length=200, description="Your reference, e.g. a bank transfer's."
    )


class Allocation(BaseModel):
    location_id: UUID
    quantity: int


class OrderLine(BaseModel):
    id: UUID
    item_id: UUID
    variant_id: UUID
    sku: str
    quantity: int
    unit_price: MoneyText
    total: MoneyText = Field(description="`quantity` times `unit_price`.")
    location_id: UUID | None = Field(description="The location the line asked for, if any.")
    allocations: list[Allocation] = Field(
        description="Where the line's units are reserved (or were shipped from)."
    )


class StatusChange(BaseModel):
    status: OrderStatus
    at: datetime
    actor: str


class Shipment(BaseModel):
    carrier: str
    tracking_number: str
    provider: str
    recorded_at: datetime


class Payment(BaseModel):
    id: UUID
    amount: MoneyText
    provider: str
    reference: str | None
    status: str = Field(examples=["captured"])
    created_by: str
    created_at: datetime


class Refund(BaseModel):
    id: UUID
    amount: MoneyText
    reason: str | None
    return_id: UUID | None
    provider: str
    reference: str | None
    created_by: str
    created_at: datetime


class Order(BaseModel):
    id: UUID
    number: int = Field(description="Per tenant: 1, 2, 3, ... in the order orders committed.")
    status: OrderStatus
    payment_status: PaymentStatus
    customer: Customer
    shipping_address: ShippingAddress | None
    currency: str
    lines: list[OrderLine]
    total: MoneyText = Field(description="The sum of the lines' totals.")
    amount_paid: MoneyText
    payments: list[Payment]
    shipment: Shipment | None
    status_history: list[StatusChange]
    notes: str | None
    metadata: dict[str, str]
    reservation_id: UUID | None
    amount_refunded: MoneyText
    refunds: list[Refund]
    exchange_of: UUID | None = Field(
        description="The order this one replaces in an exchange (also `metadata.exchange_of`)."
    )
    version: int
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime


# --- after the sale: returns, refunds, exchanges, callbacks --------------------------------


class ReturnStatus(StrEnum):
    REQUESTED = "requested"
    RECEIVED = "received"
    REJECTED = "rejected"


class ReturnLineCreate(RequestModel):
    line_id: UUID = Field(description="The order line whose units come back.")
    quantity: Quantity
    reason: str | None = Field(default=None, max_length=500, examples=["too small"])
    restock: bool = Field(
        description="Put the units back on hand (at the line's allocation locations) when "
        "the return is received; false for damaged goods."
    )


class ReturnCreate(RequestModel):
    lines: list[ReturnLineCreate] = Field(min_length=1, max_length=MAX_LINES)


class ReturnUpdate(RequestModel):
    status: Literal[ReturnStatus.RECEIVED, ReturnStatus.REJECTED] = Field(
        description="`received` (restock lines go back on hand) or `rejected`."
    )


class ReturnLine(BaseModel):
    line_id: UUID
    variant_id: UUID
    sku: str
    quantity: int
    unit_price: MoneyText
    reason: str | None
    restock: bool


class Return(BaseModel):
    id: UUID
    order_id: UUID
    status: ReturnStatus
    lines: list[ReturnLine]
    value: MoneyText = Field(description="The returned units at the prices they were sold for.")
    exchange_order_id: UUID | None = Field(
        description="The order an exchange placed in place of these units, if any."
    )
    version: int
    created_by: str
    updated_by: str
    created_at: datetime
    updated_at: datetime


class RefundCreate(RequestModel):
    amount: Amount
    reason: str | None = Field(default=None, max_length=500)
    return_id: UUID | None = Field(default=None, description="A return of this order.")
    provider: str = Field(
        default="manual",
        pattern=r"^[a-z][a-z0-9_-]{0,39}$",
        description="The payment provider that gives the money back (`manual`: by hand).",
    )
    reference: str | None = Field(default=None, max_length=200)


class ExchangeCreate(RequestModel):
    return_lines: list[ReturnLineCreate] = Field(min_length=1, max_length=MAX_LINES)
    new_lines: list[OrderLineCreate] = Field(min_length=1, max_length=MAX_LINES)


class Exchange(BaseModel):
    return_: Return = Field(alias="return", serialization_alias="return")
    order: Order = Field(description="The new order (pending, its lines reserved).")
    price_difference: MoneyText = Field(
        description="The new order's total minus the returned units' value: positive, the "
        "customer owes it; negative, it is theirs to refund."
    )

    model_config = {"populate_by_name": True}


class CallbackSecret(BaseModel):
    provider: str
    secret: str = Field(
        description="`whsec_` + base64 key, shown once. Sign callbacks with the key (the "
        "base64-decoded part) per Standard Webhooks."
    )
    created_at: datetime


class PaymentCaptured(BaseModel):
    type: Literal["payment.captured"]
    order_id: UUID
    amount: Amount
    reference: str | None = Field(default=None, max_length=200)


class ShipmentDelivered(BaseModel):
    type: Literal["shipment.delivered"]
    order_id: UUID


CallbackPayload = Annotated[PaymentCaptured | ShipmentDelivered, Field(discriminator="type")]


class CallbackResult(BaseModel):
    webhook_id: str
    outcome: Literal["processed", "duplicate"]
    order_id: UUID | None = None
