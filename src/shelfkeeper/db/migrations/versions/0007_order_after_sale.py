"""After the sale: returns, refunds, exchanges, signed integration callbacks.

`order_return` and `order_return_line` are returns (a return's lines name order lines);
`refund` the refunds recorded; `sales_order` gains `amount_refunded` and `exchange_of` (the
order an exchange replaces). `integration_secret` holds each tenant's callback secret per
provider (as is: it must be usable for HMAC verification; encrypting it at rest is the
privacy work's), `callback_receipt` the `webhook-id`s already handled (replays are ignored).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import tenant_table_statements

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
MONEY = sa.Numeric(19, 4)
TABLES = ("order_return", "order_return_line", "refund", "integration_secret", "callback_receipt")


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


def tenant_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"], ["tenant.id"], ondelete="CASCADE", name=f"fk_{table}_tenant_id_tenant"
    )


def upgrade() -> None:
    op.add_column(
        "sales_order",
        sa.Column("amount_refunded", MONEY, nullable=False, server_default=sa.text("0")),
    )
    op.add_column("sales_order", sa.Column("exchange_of", UUID, nullable=True))
    op.create_foreign_key(
        "fk_sales_order_tenant_id_exchange_of_sales_order",
        "sales_order",
        "sales_order",
        ["tenant_id", "exchange_of"],
        ["tenant_id", "id"],
    )
    op.create_check_constraint(
        "ck_sales_order_amount_refunded_within_paid",
        "sales_order",
        "amount_refunded >= 0 AND amount_refunded <= amount_paid",
    )

    op.create_table(
        "order_return",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("order_id", UUID, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("exchange_order_id", UUID, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        now("created_at"),
        now("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_order_return"),
        order_key("order_return"),
        sa.CheckConstraint(
            "status IN ('requested', 'received', 'rejected')", name="ck_order_return_status_known"
        ),
    )
    op.create_index("ix_order_return_tenant_id_order_id", "order_return", ["tenant_id", "order_id"])

    op.create_table(
        "order_return_line",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("return_id", UUID, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("line_id", UUID, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("restock", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "return_id", "position", name="pk_order_return_line"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "return_id"],
            ["order_return.tenant_id", "order_return.id"],
            ondelete="CASCADE",
            name="fk_order_return_line_tenant_id_return_id_order_return",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "line_id"],
            ["order_line.tenant_id", "order_line.id"],
            ondelete="CASCADE",
            name="fk_order_return_line_tenant_id_line_id_order_line",
        ),
        sa.CheckConstraint("quantity > 0", name="ck_order_return_line_quantity_positive"),
    )
    op.create_index(
        "ix_order_return_line_tenant_id_line_id", "order_return_line", ["tenant_id", "line_id"]
    )

    op.create_table(
        "refund",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("order_id", UUID, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("return_id", UUID, nullable=True),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=True),
        sa.Column("created_by", sa.Text, nullable=False),
        now("created_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_refund"),
        order_key("refund"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "return_id"],
            ["order_return.tenant_id", "order_return.id"],
            name="fk_refund_tenant_id_return_id_order_return",
        ),
        sa.CheckConstraint("amount > 0", name="ck_refund_amount_positive"),
    )
    op.create_index("ix_refund_tenant_id_order_id", "refund", ["tenant_id", "order_id"])

    op.create_table(
        "integration_secret",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        now("created_at"),
        sa.PrimaryKeyConstraint("tenant_id", "provider", name="pk_integration_secret"),
        tenant_key("integration_secret"),
    )

    op.create_table(
        "callback_receipt",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("webhook_id", sa.Text, nullable=False),
        now("received_at"),
        sa.PrimaryKeyConstraint("tenant_id", "provider", "webhook_id", name="pk_callback_receipt"),
        tenant_key("callback_receipt"),
    )

    for table in TABLES:
        for statement in tenant_table_statements(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
    op.drop_constraint("ck_sales_order_amount_refunded_within_paid", "sales_order")
    op.drop_constraint("fk_sales_order_tenant_id_exchange_of_sales_order", "sales_order")
    op.drop_column("sales_order", "exchange_of")
    op.drop_column("sales_order", "amount_refunded")
