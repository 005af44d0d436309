"""Low-stock alerts: each stock level remembers whether it is at or below its threshold.

`low_stock` is the level's alert state (at or below its effective threshold after its last
change); `low_stock_version` and `low_stock_since` are the level version and the time of
its last downward crossing, which recorded an `InventoryLowStock` event. Existing levels
start as not low: the first change after this migration records the crossing of a level
that is already low (see docs/inventory.md, "Low stock").

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "stock_level",
        sa.Column("low_stock", sa.Boolean, nullable=False, server_default=sa.text("false")),
    )
    op.add_column("stock_level", sa.Column("low_stock_version", sa.Integer, nullable=True))
    op.add_column(
        "stock_level",
        sa.Column("low_stock_since", postgresql.TIMESTAMP(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_column("stock_level", "low_stock_since")
    op.drop_column("stock_level", "low_stock_version")
    op.drop_column("stock_level", "low_stock")
