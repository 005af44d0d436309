"""The platform audit trail, and webhook deliveries of suspended tenants held.

`platform_audit_entry` holds one row per platform operation (creating, updating,
suspending, reactivating, deleting and exporting a tenant; the command line's `tenants
create` and `demo`): the same fields as `audit_entry`, plus `target_tenant_id`, the tenant
the operation concerned, as plain text with no foreign key, so the entry of a tenant's
deletion outlives the tenant. The column is deliberately not called `tenant_id`: a table
with a `tenant_id` column is tenant-owned (exported with the tenant, isolated per tenant),
and this one is not.

It is a platform table, under forced row-level security of its own kind: rows are visible
and insertable only in a transaction bound to the platform scope (`app.tenant_id` =
`_platform`), so a tenant-bound transaction sees none of it. Append-only like `audit_entry`:
the service role is granted SELECT and INSERT, nothing else.

`shelfkeeper_due_delivery_tenants()` (0015) now names only active tenants: a suspended
tenant's deliveries stay pending, unattempted, until it is reactivated.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import SERVICE_ROLE

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)
JSONB = postgresql.JSONB()

PLATFORM_PREDICATE = "current_setting('app.tenant_id', true) = '_platform'"

DUE_DELIVERY_TENANTS = """
CREATE OR REPLACE FUNCTION shelfkeeper_due_delivery_tenants() RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
AS $$ {query} $$
"""
ACTIVE_ONLY = (
    "SELECT DISTINCT d.tenant_id FROM public.webhook_delivery AS d "
    "JOIN public.tenant AS t ON t.id = d.tenant_id AND t.status = 'active' "
    "WHERE d.status = 'pending' AND d.next_attempt_at <= now()"
)
ANY_STATUS = (
    "SELECT DISTINCT tenant_id FROM public.webhook_delivery "
    "WHERE status = 'pending' AND next_attempt_at <= now()"
)


def upgrade() -> None:
    op.create_table(
        "platform_audit_entry",
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
        sa.Column("target_tenant_id", sa.Text, nullable=True),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=True),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("entity_type", sa.Text, nullable=False),
        sa.Column("entity_id", sa.Text, nullable=True),
        sa.Column("before", JSONB, nullable=True),
        sa.Column("after", JSONB, nullable=True),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("client_address", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_platform_audit_entry"),
    )
    op.create_index(
        "ix_platform_audit_entry_target_tenant_id_occurred_at_id",
        "platform_audit_entry",
        ["target_tenant_id", "occurred_at", "id"],
    )
    op.execute("ALTER TABLE platform_audit_entry ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE platform_audit_entry FORCE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY platform_scope ON platform_audit_entry "
        f"USING ({PLATFORM_PREDICATE}) WITH CHECK ({PLATFORM_PREDICATE})"
    )
    op.execute(f"GRANT SELECT, INSERT ON platform_audit_entry TO {SERVICE_ROLE}")
    # CREATE OR REPLACE keeps the function's owner and grants (EXECUTE: the service role).
    op.execute(DUE_DELIVERY_TENANTS.format(query=ACTIVE_ONLY))


def downgrade() -> None:
    op.execute(DUE_DELIVERY_TENANTS.format(query=ANY_STATUS))
    op.drop_table("platform_audit_entry")
