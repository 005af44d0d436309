"""Reservations: checkout holds with an expiry, and the stock each one holds.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import tenant_table_statements

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
TABLES = ("reservation", "reservation_line")


def now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, TIMESTAMPTZ, nullable=False, server_default=sa.text("now()"))


def upgrade() -> None:
    op.create_table(
        "reservation",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()")),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("expires_at", TIMESTAMPTZ, nullable=False),
        sa.Column("reference", sa.Text, nullable=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        now("created_at"),
        now("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_reservation"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], ondelete="CASCADE", name="fk_reservation_tenant_id_tenant"
        ),
        sa.CheckConstraint(
            "status IN ('held', 'released', 'expired', 'converted')",
            name="ck_reservation_status_known",
        ),
    )
    # The sweeper's query: due holds of a tenant (`status = 'held' AND expires_at <= now`).
    op.create_index(
        "ix_reservation_tenant_id_status_expires_at",
        "reservation",
        ["tenant_id", "status", "expires_at"],
    )
    op.create_index(
        "ix_reservation_tenant_id_created_at_id", "reservation", ["tenant_id", "created_at", "id"]
    )
    op.create_index(
        "ix_reservation_tenant_id_expires_at_id", "reservation", ["tenant_id", "expires_at", "id"]
    )

    op.create_table(
        "reservation_line",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("reservation_id", UUID, nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("variant_id", UUID, nullable=False),
        sa.Column("location_id", UUID, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "reservation_id", "line_no", name="pk_reservation_line"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "reservation_id"],
            ["reservation.tenant_id", "reservation.id"],
            ondelete="CASCADE",
            name="fk_reservation_line_tenant_id_reservation_id_reservation",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "variant_id", "location_id"],
            ["stock_level.tenant_id", "stock_level.variant_id", "stock_level.location_id"],
            ondelete="CASCADE",
            name="fk_reservation_line_stock_level",
        ),
        sa.CheckConstraint("quantity > 0", name="ck_reservation_line_quantity_positive"),
    )
    # Finding the holds on a level (expiry at once, when a change needs that level's units).
    op.create_index(
        "ix_reservation_line_tenant_id_variant_id_location_id",
        "reservation_line",
        ["tenant_id", "variant_id", "location_id"],
    )

    for table in TABLES:
        for statement in tenant_table_statements(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
