"""Inventory: items, variants, the SKU registry, stock levels and the movement ledger.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import tenant_table_statements

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
TABLES = ("item", "variant", "sku", "stock_level", "stock_movement")


def now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, TIMESTAMPTZ, nullable=False, server_default=sa.text("now()"))


def new_id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()"))


def upgrade() -> None:
    op.create_table(
        "item",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column(
            "attributes", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("low_stock_threshold", sa.Integer, nullable=True),
        sa.Column("allow_backorder", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        now("created_at"),
        now("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_item"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], ondelete="CASCADE", name="fk_item_tenant_id_tenant"
        ),
        sa.CheckConstraint("low_stock_threshold >= 0", name="ck_item_threshold_not_negative"),
    )
    op.create_index("ix_item_tenant_id_sku_id", "item", ["tenant_id", "sku", "id"])
    op.create_index("ix_item_tenant_id_name_id", "item", ["tenant_id", "name", "id"])
    op.create_index("ix_item_tenant_id_created_at_id", "item", ["tenant_id", "created_at", "id"])
    op.create_index("ix_item_tenant_id_updated_at_id", "item", ["tenant_id", "updated_at", "id"])
    # Trigram index for `?q=` name search, where the server ships pg_trgm (PostgreSQL's
    # contrib package; the embedded pgserver build lacks it and searches without the index).
    op.execute(
        """
        DO $$ BEGIN
          IF EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
            CREATE INDEX ix_item_name_trgm ON item USING gin (name gin_trgm_ops);
          END IF;
        END $$
        """
    )

    op.create_table(
        "variant",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("item_id", UUID, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column(
            "attributes", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("price", sa.Numeric(19, 4), nullable=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        now("created_at"),
        now("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_variant"),
        sa.UniqueConstraint("tenant_id", "sku", name="uq_variant_tenant_id_sku"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "item_id"],
            ["item.tenant_id", "item.id"],
            ondelete="CASCADE",
            name="fk_variant_tenant_id_item_id_item",
        ),
        sa.CheckConstraint("price >= 0", name="ck_variant_price_not_negative"),
    )
    op.create_index("ix_variant_tenant_id_item_id", "variant", ["tenant_id", "item_id"])

    op.create_table(
        "sku",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("item_id", UUID, nullable=False),
        sa.Column("variant_id", UUID, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "sku", name="pk_sku"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "item_id"],
            ["item.tenant_id", "item.id"],
            ondelete="CASCADE",
            name="fk_sku_tenant_id_item_id_item",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "variant_id"],
            ["variant.tenant_id", "variant.id"],
            ondelete="CASCADE",
            name="fk_sku_tenant_id_variant_id_variant",
        ),
    )

    op.create_table(
        "stock_level",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("variant_id", UUID, nullable=False),
        sa.Column("location_id", UUID, nullable=False),
        sa.Column("on_hand", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("reserved", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("allow_backorder", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("low_stock_threshold", sa.Integer, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        now("created_at"),
        now("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "variant_id", "location_id", name="pk_stock_level"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "variant_id"],
            ["variant.tenant_id", "variant.id"],
            ondelete="CASCADE",
            name="fk_stock_level_tenant_id_variant_id_variant",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "location_id"],
            ["location.tenant_id", "location.id"],
            ondelete="RESTRICT",
            name="fk_stock_level_tenant_id_location_id_location",
        ),
        sa.CheckConstraint("on_hand >= 0", name="ck_stock_level_on_hand_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="ck_stock_level_reserved_not_negative"),
        sa.CheckConstraint(
            "allow_backorder OR on_hand >= reserved",
            name="ck_stock_level_available_not_negative",
        ),
        sa.CheckConstraint(
            "low_stock_threshold >= 0", name="ck_stock_level_threshold_not_negative"
        ),
    )
    op.create_index(
        "ix_stock_level_tenant_id_location_id", "stock_level", ["tenant_id", "location_id"]
    )

    op.create_table(
        "stock_movement",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("variant_id", UUID, nullable=False),
        sa.Column("location_id", UUID, nullable=False),
        sa.Column("level_version", sa.Integer, nullable=False),
        sa.Column("operation", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("on_hand_after", sa.BigInteger, nullable=False),
        sa.Column("reserved_after", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("reference", sa.Text, nullable=True),
        sa.Column("actor", sa.Text, nullable=False),
        now("created_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_stock_movement"),
        sa.UniqueConstraint(
            "tenant_id",
            "variant_id",
            "location_id",
            "level_version",
            name="uq_stock_movement_order",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "variant_id", "location_id"],
            ["stock_level.tenant_id", "stock_level.variant_id", "stock_level.location_id"],
            ondelete="CASCADE",
            name="fk_stock_movement_stock_level",
        ),
        sa.CheckConstraint(
            "operation IN ('add', 'subtract', 'reserve', 'release', 'set')",
            name="ck_stock_movement_operation_known",
        ),
        sa.CheckConstraint("quantity >= 0", name="ck_stock_movement_quantity_not_negative"),
        sa.CheckConstraint(
            "reason IN ('received', 'sale', 'correction', 'cycle_count', 'damaged', 'lost', "
            "'returned', 'transfer', 'expired', 'other')",
            name="ck_stock_movement_reason_known",
        ),
    )
    op.create_index(
        "ix_stock_movement_tenant_id_created_at_id",
        "stock_movement",
        ["tenant_id", "created_at", "id"],
    )

    for table in TABLES:
        for statement in tenant_table_statements(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
