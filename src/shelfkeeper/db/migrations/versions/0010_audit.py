"""The append-only audit trail.

`audit_entry` holds one row per change: who (`actor`, `role`), in which request
(`request_id`, `client_address`), what (`action`, `entity_type`, `entity_id`) and how
(`before`, `after`: the changed fields, redacted). It is a tenant table under forced
row-level security like every other, but the service role is granted only SELECT and
INSERT: it can neither change nor remove an entry. Deleting the tenant still removes its
entries (ON DELETE CASCADE: PostgreSQL runs referential actions as the table's owner).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import SERVICE_ROLE, tenant_table_statements

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)
JSONB = postgresql.JSONB()


def upgrade() -> None:
    op.create_table(
        "audit_entry",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        ),
        sa.Column(
            "occurred_at",
            TIMESTAMPTZ,
            nullable=False,
            server_default=sa.text("clock_timestamp()"),
        ),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("entity_type", sa.Text, nullable=False),
        sa.Column("entity_id", sa.Text, nullable=True),
        sa.Column("before", JSONB, nullable=True),
        sa.Column("after", JSONB, nullable=True),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("client_address", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_audit_entry"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            ondelete="CASCADE",
            name="fk_audit_entry_tenant_id_tenant",
        ),
    )
    op.create_index(
        "ix_audit_entry_tenant_id_occurred_at_id",
        "audit_entry",
        ["tenant_id", "occurred_at", "id"],
    )
    op.create_index(
        "ix_audit_entry_tenant_id_entity_type_entity_id_occurred_at",
        "audit_entry",
        ["tenant_id", "entity_type", "entity_id", "occurred_at"],
    )
    # RLS enabled, forced and the tenant policy, as for every tenant table; but not the
    # full grant: the trail is append-only for the service.
    for statement in tenant_table_statements("audit_entry"):
        if not statement.startswith("GRANT "):
            op.execute(statement)
    op.execute(f"GRANT SELECT, INSERT ON audit_entry TO {SERVICE_ROLE}")


def downgrade() -> None:
    op.drop_table("audit_entry")
