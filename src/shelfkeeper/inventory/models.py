"""Inventory tables.

`sku` is the tenant's SKU registry: every item SKU and every variant SKU has one row there,
so a SKU is unique per tenant across items and variants. `stock_level` holds one row per
(variant, location), with CHECK constraints that make the stock invariants impossible to
break, even by a bug; its `low_stock` columns are the level's low-stock alert state
(whether it is at or below its threshold, and the version and time of its last downward
crossing). `stock_movement` is the append-only ledger; `level_version` orders a
level's movements (the level's version after the change). `reservation` is a checkout hold
with an expiry, and `reservation_line` the units it holds at each level (lines survive the
hold's end, as its history).
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

from shelfkeeper.db.metadata import metadata


def _timestamps() -> list[Column]:  # type: ignore[type-arg]
    return [
        Column(
            "created_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")
        ),
        Column(
            "updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")
        ),
    ]


def _id() -> Column:  # type: ignore[type-arg]
    return Column(
        "id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")
    )


item = Table(
    "item",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    Column("sku", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("description", Text, nullable=True),
    Column("attributes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("low_stock_threshold", Integer, nullable=True),
    Column("allow_backorder", Boolean, nullable=False, server_default=text("false")),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_by", Text, nullable=False),
    Column("updated_by", Text, nullable=False),
    *_timestamps(),
    PrimaryKeyConstraint("tenant_id", "id"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
    CheckConstraint("low_stock_threshold >= 0", name="threshold_not_negative"),
    Index("ix_item_tenant_id_sku_id", "tenant_id", "sku", "id"),
    Index("ix_item_tenant_id_name_id", "tenant_id", "name", "id"),
    Index("ix_item_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    Index("ix_item_tenant_id_updated_at_id", "tenant_id", "updated_at", "id"),
    Index(
        "ix_item_name_trgm",
        "name",
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    ),
)

variant = Table(
    "variant",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    Column("item_id", UUID(as_uuid=True), nullable=False),
    Column("sku", Text, nullable=False),
    Column("attributes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("price", Numeric(19, 4), nullable=True),
    Column("position", Integer, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    *_timestamps(),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint("tenant_id", "sku"),
    ForeignKeyConstraint(
        ["tenant_id", "item_id"], ["item.tenant_id", "item.id"], ondelete="CASCADE"
    ),
    CheckConstraint("price >= 0", name="price_not_negative"),
    Index("ix_variant_tenant_id_item_id", "tenant_id", "item_id"),
)

sku = Table(
    "sku",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("item_id", UUID(as_uuid=True), nullable=False),
    Column("variant_id", UUID(as_uuid=True), nullable=True),
    PrimaryKeyConstraint("tenant_id", "sku"),
    ForeignKeyConstraint(
        ["tenant_id", "item_id"], ["item.tenant_id", "item.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "variant_id"], ["variant.tenant_id", "variant.id"], ondelete="CASCADE"
    ),
)

stock_level = Table(
    "stock_level",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("variant_id", UUID(as_uuid=True), nullable=False),
    Column("location_id", UUID(as_uuid=True), nullable=False),
    Column("on_hand", BigInteger, nullable=False, server_default=text("0")),
    Column("reserved", BigInteger, nullable=False, server_default=text("0")),
    Column("allow_backorder", Boolean, nullable=False, server_default=text("false")),
    Column("low_stock_threshold", Integer, nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    *_timestamps(),
    Column("low_stock", Boolean, nullable=False, server_default=text("false")),
    Column("low_stock_version", Integer, nullable=True),
    Column("low_stock_since", TIMESTAMP(timezone=True), nullable=True),
    PrimaryKeyConstraint("tenant_id", "variant_id", "location_id"),
    ForeignKeyConstraint(
        ["tenant_id", "variant_id"], ["variant.tenant_id", "variant.id"], ondelete="CASCADE"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "location_id"], ["location.tenant_id", "location.id"], ondelete="RESTRICT"
    ),
    CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
    CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    CheckConstraint("allow_backorder OR on_hand >= reserved", name="available_not_negative"),
    CheckConstraint("low_stock_threshold >= 0", name="threshold_not_negative"),
    Index(
        "ix_stock_level_tenant_id_location_id_variant_id",
        "tenant_id",
        "location_id",
        "variant_id",
    ),
)

stock_movement = Table(
    "stock_movement",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    Column("variant_id", UUID(as_uuid=True), nullable=False),
    Column("location_id", UUID(as_uuid=True), nullable=False),
    Column("level_version", Integer, nullable=False),
    Column("operation", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("on_hand_after", BigInteger, nullable=False),
    Column("reserved_after", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("note", Text, nullable=True),
    Column("reference", Text, nullable=True),
    Column("actor", Text, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint(
        "tenant_id", "variant_id", "location_id", "level_version", name="uq_stock_movement_order"
    ),
    ForeignKeyConstraint(
        ["tenant_id", "variant_id", "location_id"],
        ["stock_level.tenant_id", "stock_level.variant_id", "stock_level.location_id"],
        ondelete="CASCADE",
        name="fk_stock_movement_stock_level",
    ),
    CheckConstraint(
        "operation IN ('add', 'subtract', 'reserve', 'release', 'set')", name="operation_known"
    ),
    CheckConstraint("quantity >= 0", name="quantity_not_negative"),
    CheckConstraint(
        "reason IN ('received', 'sale', 'correction', 'cycle_count', 'damaged', 'lost', "
        "'returned', 'transfer', 'expired', 'other')",
        name="reason_known",
    ),
    Index("ix_stock_movement_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
)

reservation = Table(
    "reservation",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    Column("status", Text, nullable=False),
    Column("expires_at", TIMESTAMP(timezone=True), nullable=False),
    Column("reference", Text, nullable=True),
    Column("created_by", Text, nullable=False),
    Column("version", Integer, nullable=False, server_default=text("1")),
    *_timestamps(),
    PrimaryKeyConstraint("tenant_id", "id"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
    CheckConstraint("status IN ('held', 'released', 'expired', 'converted')", name="status_known"),
    Index("ix_reservation_tenant_id_status_expires_at", "tenant_id", "status", "expires_at"),
    Index("ix_reservation_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    Index("ix_reservation_tenant_id_expires_at_id", "tenant_id", "expires_at", "id"),
)

reservation_line = Table(
    "reservation_line",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("reservation_id", UUID(as_uuid=True), nullable=False),
    Column("line_no", Integer, nullable=False),
    Column("variant_id", UUID(as_uuid=True), nullable=False),
    Column("location_id", UUID(as_uuid=True), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "reservation_id", "line_no"),
    ForeignKeyConstraint(
        ["tenant_id", "reservation_id"],
        ["reservation.tenant_id", "reservation.id"],
        ondelete="CASCADE",
    ),
    ForeignKeyConstraint(
        ["tenant_id", "variant_id", "location_id"],
        ["stock_level.tenant_id", "stock_level.variant_id", "stock_level.location_id"],
        ondelete="CASCADE",
        name="fk_reservation_line_stock_level",
    ),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    Index(
        "ix_reservation_line_tenant_id_variant_id_location_id",
        "tenant_id",
        "variant_id",
        "location_id",
    ),
)
