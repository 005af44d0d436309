"""Orders: `order_counter`, `sales_order`, `order_line`, `order_allocation`,
`order_status_change`, `payment`.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import tenant_table_statements

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
MONEY = sa.Numeric(19, 4)
TABLES = (
    "order_counter",
    "sales_order",
    "order_line",
    "order_allocation",
    "order_status_change",
    "payment",
)
ORDER_STATUSES = "('pending', 'processed', 'shipped', 'delivered', 'canceled')"
PAYMENT_STATUSES = "('unpaid', 'partially_paid', 'paid', 'partially_refunded', 'refunded')"


def now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, TIMESTAMPTZ, nullable=False, server_default=sa.text("now()"))


def new_id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()"))


def order_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id", "order_id"],
        ["sales_order.tenant_id", "sales_order.id"],
        ondelete="CASCADE",
        name=f"fk_{table}_tenant_id_order_id_sales_order",
    )


def upgrade() -> None:
    # Each tenant's last order number; incremented by the last statement of the
    # transaction that creates an order.
    op.create_table(
        "order_counter",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", name="pk_order_counter"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            ondelete="CASCADE",
            name="fk_order_counter_tenant_id_tenant",
        ),
    )

    op.create_table(
        "sales_order",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("number", sa.BigInteger, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("payment_status", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("amount_paid", MONEY, nullable=False, server_default=sa.text("0")),
        sa.Column("customer", postgresql.JSONB, nullable=False),
        sa.Column("customer_email_index", sa.Text, nullable=False),
        sa.Column("shipping_address", postgresql.JSONB, nullable=True),
        sa.Column("notes", sa.Text, nullable=True),
        sa.Column(
            "metadata", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("shipment", postgresql.JSONB, nullable=True),
        sa.Column("reservation_id", UUID, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        now("created_at"),
        now("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_sales_order"),
        sa.UniqueConstraint("tenant_id", "number", name="uq_sales_order_tenant_id_number"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], ondelete="CASCADE", name="fk_sales_order_tenant_id_tenant"
        ),
        sa.CheckConstraint(f"status IN {ORDER_STATUSES}", name="ck_sales_order_status_known"),
        sa.CheckConstraint(
            f"payment_status IN {PAYMENT_STATUSES}", name="ck_sales_order_payment_status_known"
        ),
        sa.CheckConstraint("total >= 0", name="ck_sales_order_total_not_negative"),
        sa.CheckConstraint("amount_paid >= 0", name="ck_sales_order_amount_paid_not_negative"),
    )
    # The list's sort orders (keyset pagination), its status filter, and the blind index
    # of the customer's email.
    for columns in (("created_at", "id"), ("updated_at", "id"), ("total", "id")):
        op.create_index(
            f"ix_sales_order_tenant_id_{'_'.join(columns)}", "sales_order", ["tenant_id", *columns]
        )
    op.create_index(
        "ix_sales_order_tenant_id_status_created_at",
        "sales_order",
        ["tenant_id", "status", "created_at"],
    )
    op.create_index(
        "ix_sales_order_tenant_id_customer_email_index",
        "sales_order",
        ["tenant_id", "customer_email_index"],
    )

    op.create_table(
        "order_line",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("order_id", UUID, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("item_id", UUID, nullable=False),
        sa.Column("variant_id", UUID, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("location_id", UUID, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_order_line"),
        sa.UniqueConstraint(
            "tenant_id", "order_id", "position", name="uq_order_line_tenant_id_order_id_position"
        ),
        order_key("order_line"),
        sa.CheckConstraint("quantity > 0", name="ck_order_line_quantity_positive"),
        sa.CheckConstraint("unit_price >= 0", name="ck_order_line_unit_price_not_negative"),
    )

    op.create_table(
        "order_allocation",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("line_id", UUID, nullable=False),
        sa.Column("location_id", UUID, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "line_id", "location_id", name="pk_order_allocation"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "line_id"],
            ["order_line.tenant_id", "order_line.id"],
            ondelete="CASCADE",
            name="fk_order_allocation_tenant_id_line_id_order_line",
        ),
        sa.CheckConstraint("quantity > 0", name="ck_order_allocation_quantity_positive"),
    )

    op.create_table(
        "order_status_change",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("order_id", UUID, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        now("at"),
        sa.PrimaryKeyConstraint("tenant_id", "order_id", "position", name="pk_order_status_change"),
        order_key("order_status_change"),
        sa.CheckConstraint(
            f"status IN {ORDER_STATUSES}", name="ck_order_status_change_status_known"
        ),
    )

    op.create_table(
        "payment",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("order_id", UUID, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        now("created_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_payment"),
        order_key("payment"),
        sa.CheckConstraint("amount > 0", name="ck_payment_amount_positive"),
        sa.CheckConstraint("status IN ('captured')", name="ck_payment_status_known"),
    )
    op.create_index("ix_payment_tenant_id_order_id", "payment", ["tenant_id", "order_id"])

    for table in TABLES:
        for statement in tenant_table_statements(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
