"""Order tables.

After the sale: `order_return` and `order_return_line` (returns), `refund`, and for signed
inbound callbacks `integration_secret` (per tenant and provider) and `callback_receipt`
(the `webhook-id`s handled, so a replay has no second effect).

`sales_order` is the order (`order` is a reserved word), `order_line` its lines and
`order_allocation` where each line's units are reserved (or were shipped from).
`order_status_change` is the status history and `payment` the payments recorded.
`order_counter` holds each tenant's last order number: it is incremented by the last
statement of the transaction that creates an order, so its row lock is held only for the
moment before commit (see docs/orders.md).

The customer's personal data (`sales_order.customer` and `shipping_address`) and the
callback secrets are stored sealed under the tenant's data key (`privacy.service`: AES-GCM,
envelope encryption); orders are found by email through `customer_email_index`, a blind
index (`order/blind_index.py`).

Lines name variants and locations by id only, without foreign keys into inventory: an
order is a record of a sale and keeps its SKU and prices even when the catalogue changes.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

from shelfkeeper.db.metadata import metadata

ORDER_STATUSES = "('pending', 'processed', 'shipped', 'delivered', 'canceled')"
PAYMENT_STATUSES = "('unpaid', 'partially_paid', 'paid', 'partially_refunded', 'refunded')"


def _now(name: str) -> Column:  # type: ignore[type-arg]
    return Column(name, TIMESTAMP(timezone=True), nullable=False, server_default=text("now()"))


def _id() -> Column:  # type: ignore[type-arg]
    return Column(
        "id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")
    )


order_counter = Table(
    "order_counter",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("last", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
)

sales_order = Table(
    "sales_order",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    # NULL only inside the creating transaction, until its last statement numbers it.
    Column("number", BigInteger, nullable=True),
    Column("status", Text, nullable=False),
    Column("payment_status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("total", Numeric(19, 4), nullable=False),
    Column("amount_paid", Numeric(19, 4), nullable=False, server_default=text("0")),
    Column("customer", LargeBinary, nullable=False),
    Column("customer_email_index", Text, nullable=False),
    Column("shipping_address", LargeBinary, nullable=True),
    Column("notes", Text, nullable=True),
    Column("metadata", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("shipment", JSONB, nullable=True),
    Column("reservation_id", UUID(as_uuid=True), nullable=True),
    Column("amount_refunded", Numeric(19, 4), nullable=False, server_default=text("0")),
    Column("exchange_of", UUID(as_uuid=True), nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_by", Text, nullable=False),
    Column("updated_by", Text, nullable=False),
    _now("created_at"),
    _now("updated_at"),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint("tenant_id", "number"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
    CheckConstraint(f"status IN {ORDER_STATUSES}", name="status_known"),
    CheckConstraint(f"payment_status IN {PAYMENT_STATUSES}", name="payment_status_known"),
    CheckConstraint("total >= 0", name="total_not_negative"),
    CheckConstraint("amount_paid >= 0", name="amount_paid_not_negative"),
    CheckConstraint(
        "amount_refunded >= 0 AND amount_refunded <= amount_paid",
        name="amount_refunded_within_paid",
    ),
    ForeignKeyConstraint(["tenant_id", "exchange_of"], ["sales_order.tenant_id", "sales_order.id"]),
    Index("ix_sales_order_tenant_id_created_at_id", "tenant_id", "created_at", "id"),
    Index("ix_sales_order_tenant_id_updated_at_id", "tenant_id", "updated_at", "id"),
    Index("ix_sales_order_tenant_id_total_id", "tenant_id", "total", "id"),
    Index("ix_sales_order_tenant_id_status_created_at", "tenant_id", "status", "created_at"),
    Index("ix_sales_order_tenant_id_customer_email_index", "tenant_id", "customer_email_index"),
)

order_line = Table(
    "order_line",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    Column("order_id", UUID(as_uuid=True), nullable=False),
    Column("position", Integer, nullable=False),
    Column("item_id", UUID(as_uuid=True), nullable=False),
    Column("variant_id", UUID(as_uuid=True), nullable=False),
    Column("sku", Text, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price", Numeric(19, 4), nullable=False),
    Column("location_id", UUID(as_uuid=True), nullable=True),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint("tenant_id", "order_id", "position"),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["sales_order.tenant_id", "sales_order.id"],
        ondelete="CASCADE",
    ),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
)

order_allocation = Table(
    "order_allocation",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("line_id", UUID(as_uuid=True), nullable=False),
    Column("location_id", UUID(as_uuid=True), nullable=False),
    Column("position", Integer, nullable=False),
    Column("quantity", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "line_id", "location_id"),
    ForeignKeyConstraint(
        ["tenant_id", "line_id"], ["order_line.tenant_id", "order_line.id"], ondelete="CASCADE"
    ),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

order_status_change = Table(
    "order_status_change",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("order_id", UUID(as_uuid=True), nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("actor", Text, nullable=False),
    _now("at"),
    PrimaryKeyConstraint("tenant_id", "order_id", "position"),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["sales_order.tenant_id", "sales_order.id"],
        ondelete="CASCADE",
    ),
    CheckConstraint(f"status IN {ORDER_STATUSES}", name="status_known"),
)

payment = Table(
    "payment",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    Column("order_id", UUID(as_uuid=True), nullable=False),
    Column("amount", Numeric(19, 4), nullable=False),
    Column("provider", Text, nullable=False),
    Column("reference", Text, nullable=True),
    Column("status", Text, nullable=False),
    Column("created_by", Text, nullable=False),
    _now("created_at"),
    PrimaryKeyConstraint("tenant_id", "id"),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["sales_order.tenant_id", "sales_order.id"],
        ondelete="CASCADE",
    ),
    CheckConstraint("amount > 0", name="amount_positive"),
    CheckConstraint("status IN ('captured')", name="status_known"),
    Index("ix_payment_tenant_id_order_id", "tenant_id", "order_id"),
)

order_return = Table(
    "order_return",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    Column("order_id", UUID(as_uuid=True), nullable=False),
    Column("status", Text, nullable=False),
    Column("exchange_order_id", UUID(as_uuid=True), nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_by", Text, nullable=False),
    Column("updated_by", Text, nullable=False),
    _now("created_at"),
    _now("updated_at"),
    PrimaryKeyConstraint("tenant_id", "id"),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["sales_order.tenant_id", "sales_order.id"],
        ondelete="CASCADE",
    ),
    CheckConstraint("status IN ('requested', 'received', 'rejected')", name="status_known"),
    Index("ix_order_return_tenant_id_order_id", "tenant_id", "order_id"),
)

order_return_line = Table(
    "order_return_line",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("return_id", UUID(as_uuid=True), nullable=False),
    Column("position", Integer, nullable=False),
    Column("line_id", UUID(as_uuid=True), nullable=False),
    Column("quantity", BigInteger, nullable=False),
    Column("reason", Text, nullable=True),
    Column("restock", Boolean, nullable=False),
    PrimaryKeyConstraint("tenant_id", "return_id", "position"),
    ForeignKeyConstraint(
        ["tenant_id", "return_id"],
        ["order_return.tenant_id", "order_return.id"],
        ondelete="CASCADE",
    ),
    ForeignKeyConstraint(
        ["tenant_id", "line_id"], ["order_line.tenant_id", "order_line.id"], ondelete="CASCADE"
    ),
    CheckConstraint("quantity > 0", name="quantity_positive"),
    Index("ix_order_return_line_tenant_id_line_id", "tenant_id", "line_id"),
)

refund = Table(
    "refund",
    metadata,
    Column("tenant_id", Text, nullable=False),
    _id(),
    Column("order_id", UUID(as_uuid=True), nullable=False),
    Column("amount", Numeric(19, 4), nullable=False),
    Column("reason", Text, nullable=True),
    Column("return_id", UUID(as_uuid=True), nullable=True),
    Column("provider", Text, nullable=False),
    Column("reference", Text, nullable=True),
    Column("created_by", Text, nullable=False),
    _now("created_at"),
    PrimaryKeyConstraint("tenant_id", "id"),
    ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["sales_order.tenant_id", "sales_order.id"],
        ondelete="CASCADE",
    ),
    ForeignKeyConstraint(["tenant_id", "return_id"], ["order_return.tenant_id", "order_return.id"]),
    CheckConstraint("amount > 0", name="amount_positive"),
    Index("ix_refund_tenant_id_order_id", "tenant_id", "order_id"),
)

integration_secret = Table(
    "integration_secret",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    # Sealed under the tenant's data key: verifying an HMAC needs the secret itself, so it
    # is encrypted, not hashed.
    Column("secret", LargeBinary, nullable=False),
    Column("created_by", Text, nullable=False),
    _now("created_at"),
    PrimaryKeyConstraint("tenant_id", "provider"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
)

callback_receipt = Table(
    "callback_receipt",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("provider", Text, nullable=False),
    Column("webhook_id", Text, nullable=False),
    _now("received_at"),
    PrimaryKeyConstraint("tenant_id", "provider", "webhook_id"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
)
