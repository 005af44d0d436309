"""The transactional outbox: `event`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import tenant_table_statements

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        ),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("data", postgresql.JSONB, nullable=False),
        sa.Column(
            "time",
            postgresql.TIMESTAMP(timezone=True),
            nullable=False,
            server_default=sa.text("clock_timestamp()"),
        ),
        sa.Column("sequence", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_event"),
        sa.UniqueConstraint("tenant_id", "sequence", name="uq_event_tenant_id_sequence"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], ondelete="CASCADE", name="fk_event_tenant_id_tenant"
        ),
    )
    op.create_index(
        "ix_event_unsequenced",
        "event",
        ["tenant_id", "time", "id"],
        postgresql_where=sa.text("sequence IS NULL"),
    )
    for statement in tenant_table_statements("event"):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("event")
