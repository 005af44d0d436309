"""Per-consumer event cursors (NATS publishing).

`event_cursor` holds, per tenant and publisher (`consumer`, e.g. `nats:SHELFKEEPER`), the
last event `sequence` published. A publisher locks the row (`FOR UPDATE SKIP LOCKED`) while
it publishes the events after it and advances it in the same transaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import tenant_table_statements

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_cursor",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "updated_at",
            postgresql.TIMESTAMP(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.PrimaryKeyConstraint("tenant_id", "consumer", name="pk_event_cursor"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            ondelete="CASCADE",
            name="fk_event_cursor_tenant_id_tenant",
        ),
    )
    for statement in tenant_table_statements("event_cursor"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("event_cursor")
