"""Inventory request and response models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    PlainSerializer,
    model_validator,
)

from shelfkeeper.kit.schemas import Moment, PatchModel, RequestModel, refuse_nul

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
MAX_QUANTITY = 1_000_000_000
MAX_VERSION = 2**31 - 1
"""Versions are `integer` columns; no larger number can be a level's version."""


def _decimal_text(value: Any) -> Any:
    """Money arrives as a decimal string: a JSON number may already have lost digits."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError('give money as a decimal string, e.g. "19.99"')
    return value


def money_text(value: Decimal) -> str:
    """A price as text: at least two decimals (`"25.00"`), more only when it has them."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        return format(value.quantize(Decimal("0.01")), "f")
    return format(normalized, "f")


Sku = Annotated[
    str,
    Field(
        pattern=SKU_PATTERN,
        description="Letters, digits, `.`, `_`, `/`, `-`; unique in the tenant across items "
        "and variants.",
        examples=["TOWEL-BATH-WHITE"],
    ),
]
Money = Annotated[
    Decimal,
    BeforeValidator(_decimal_text),
    Field(ge=0, max_digits=15, decimal_places=4, examples=["19.99"]),
    PlainSerializer(lambda value: money_text(value), return_type=str),
]
Quantity = Annotated[int, Field(strict=True, ge=1, le=MAX_QUANTITY)]
Threshold = Annotated[int, Field(strict=True, ge=0, le=MAX_QUANTITY)]
Flag = Annotated[bool, Field(strict=True)]


class VariantAttributes(RequestModel):
    """Well-known attributes plus free-form ones (string values)."""

    model_config = RequestModel.model_config | {"extra": "allow"}

    size: str | None = Field(default=None, max_length=100, examples=["L"])
    color: str | None = Field(default=None, max_length=100, examples=["white"])
    packaging: str | None = Field(default=None, max_length=100, examples=["box of 6"])

    @model_validator(mode="after")
    def _free_form_values_are_short_strings(self) -> Self:
        extra = self.model_extra or {}
        if len(extra) > 50:
            raise ValueError("at most 50 attributes")
        refuse_nul(extra)
        for name, value in extra.items():
            if len(name) > 100 or not isinstance(value, str) or len(value) > 500:
                raise ValueError(f"attribute `{name[:100]}` must be a string of up to 500 chars")
        return self


class VariantCreate(RequestModel):
    sku: Sku
    attributes: VariantAttributes = Field(default_factory=VariantAttributes)
    price: Money | None = None


class VariantUpdate(PatchModel):
    sku: Sku | None = None
    attributes: VariantAttributes | None = None
    price: Money | None = None

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"price"})


class ItemAttributes(RequestModel):
    model_config = RequestModel.model_config | {"extra": "allow"}

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        extra = self.model_extra or {}
        if len(extra) > 50:
            raise ValueError("at most 50 attributes")
        refuse_nul(extra)
        for name in extra:
            if len(name) > 100:
                raise ValueError("attribute names are at most 100 characters")
        return self


class ItemCreate(RequestModel):
    sku: Sku
    name: str = Field(min_length=1, max_length=300, examples=["Bath towel"])
    description: str | None = Field(default=None, max_length=10_000)
    attributes: ItemAttributes = Field(default_factory=ItemAttributes)
    low_stock_threshold: Threshold | None = None
    allow_backorder: Flag = False
    price: Money | None = Field(
        default=None, description="Price of the default variant (when `variants` is omitted)."
    )
    variants: list[VariantCreate] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Omit for one default variant whose `sku` is the item's.",
    )

    @model_validator(mode="after")
    def _skus_distinct(self) -> Self:
        if self.variants is not None:
            if self.price is not None:
                raise ValueError("give `price` per variant when `variants` is given")
            skus = [self.sku, *(variant.sku for variant in self.variants)]
            if len(set(skus)) != len(skus):
                raise ValueError("the item and its variants need distinct SKUs")
        return self


class ItemUpdate(PatchModel):
    """Details of an item; fields not sent are kept."""

    name: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=10_000)
    attributes: ItemAttributes | None = None
    low_stock_threshold: Threshold | None = None
    allow_backorder: Flag | None = None

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"description", "low_stock_threshold"})


class Variant(BaseModel):
    id: UUID
    sku: str
    attributes: dict[str, Any]
    price: Money | None
    version: int


class StockLevel(BaseModel):
    variant_id: UUID
    location_id: UUID
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int | None
    version: int


class Item(BaseModel):
    id: UUID
    sku: str
    name: str
    description: str | None
    attributes: dict[str, Any]
    variants: list[Variant]
    stock: list[StockLevel]
    low_stock_threshold: int | None
    allow_backorder: bool
    version: int
    created_at: datetime
    updated_at: datetime


class Operation(StrEnum):
    ADD = "add"
    SUBTRACT = "subtract"
    RESERVE = "reserve"
    RELEASE = "release"
    SET = "set"


class Reason(StrEnum):
    RECEIVED = "received"
    SALE = "sale"
    CORRECTION = "correction"
    CYCLE_COUNT = "cycle_count"
    DAMAGED = "damaged"
    LOST = "lost"
    RETURNED = "returned"
    TRANSFER = "transfer"
    EXPIRED = "expired"
    OTHER = "other"


class StockAdjustment(RequestModel):
    operation: Operation
    quantity: int = Field(strict=True, ge=0, le=MAX_QUANTITY, description=">= 1; >= 0 for `set`.")
    location_id: UUID
    variant_id: UUID | None = None
    sku: Sku | None = None
    reason: Reason = Reason.OTHER
    note: str | None = Field(default=None, max_length=2000)
    reference: str | None = Field(default=None, max_length=500, examples=["po:2026-0042"])
    expected_version: int | None = Field(
        default=None,
        strict=True,
        ge=0,
        le=MAX_VERSION,
        description="The level's current `version` (0: the level does not exist yet); "
        "another → 409 `version-conflict`.",
    )

    @model_validator(mode="after")
    def _quantity_for_operation(self) -> Self:
        if self.operation != Operation.SET and self.quantity < 1:
            raise ValueError("quantity must be at least 1 (0 is allowed only for `set`)")
        return self


class BatchAdjustment(StockAdjustment):
    item_id: UUID


class BatchAdjustments(RequestModel):
    adjustments: list[BatchAdjustment] = Field(min_length=1, max_length=500)


class Movement(BaseModel):
    id: UUID
    variant_id: UUID
    location_id: UUID
    operation: Operation
    quantity: int
    on_hand_after: int
    reserved_after: int
    reason: Reason
    note: str | None
    reference: str | None
    actor: str
    created_at: datetime


class AdjustmentResult(BaseModel):
    level: StockLevel
    movement: Movement


class BatchResult(BaseModel):
    results: list[AdjustmentResult]


class TransferCreate(RequestModel):
    variant_id: UUID | None = None
    sku: Sku | None = None
    from_location_id: UUID
    to_location_id: UUID
    quantity: Quantity
    note: str | None = Field(default=None, max_length=2000)
    reference: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _two_places_one_variant(self) -> Self:
        if self.from_location_id == self.to_location_id:
            raise ValueError("`from_location_id` and `to_location_id` must differ")
        if self.variant_id is None and self.sku is None:
            raise ValueError("give `variant_id` or `sku`")
        return self


class Transfer(BaseModel):
    id: UUID
    variant_id: UUID
    from_location_id: UUID
    to_location_id: UUID
    quantity: int
    movements: list[Movement]


class ItemStock(BaseModel):
    """An item's stock per level, now or as the ledger says it was at `as_of`."""

    item_id: UUID
    as_of: datetime | None = Field(
        description="The time asked about; null for the levels as they are now."
    )
    levels: list[StockLevel] = Field(
        description="Each level of the item (by variant, then location). With `as_of`: the "
        "state after the level's last movement at or before then, `version` being that "
        "movement's; a level without a movement by then is left out. `low_stock_threshold` "
        "is always the current one."
    )


AsOf = Annotated[
    Moment,
    Field(
        description="RFC 3339 with a time zone; not in the future.",
        examples=["2026-12-01T09:00:00Z"],
    ),
]


class LevelThresholdUpdate(RequestModel):
    """The low-stock threshold of one level; null falls back to the item's, then the
    tenant's default."""

    variant_id: UUID | None = Field(
        default=None, description="May be omitted when the item has one variant."
    )
    sku: Sku | None = Field(default=None, description="The variant's SKU, instead of its id.")
    low_stock_threshold: Threshold | None = Field(
        description="Alert when available stock is at or below this; null: inherit."
    )


class ThresholdSource(StrEnum):
    LEVEL = "level"
    ITEM = "item"
    TENANT = "tenant"


class AlertItem(BaseModel):
    id: UUID
    sku: str
    name: str


class LowStockStatus(BaseModel):
    """A stock level with its low-stock state."""

    variant_id: UUID
    location_id: UUID
    on_hand: int
    reserved: int
    available: int
    low_stock_threshold: int | None = Field(description="The level's own threshold, if set.")
    version: int
    sku: str = Field(description="The variant's SKU.")
    item: AlertItem
    threshold: int | None = Field(
        description="The threshold that applies: the level's, else the item's, else the "
        "tenant's default; null when none is set (the level never alerts)."
    )
    threshold_source: ThresholdSource | None
    low_stock: bool = Field(description="Whether `available` is at or below `threshold`.")
    since: datetime | None = Field(
        description="When the level last crossed its threshold downward (the time its "
        "`InventoryLowStock` was recorded); null while low without a recorded crossing (the "
        "tenant's default changed since the level's last change)."
    )
    since_version: int | None = Field(description="The level's version at that crossing.")
