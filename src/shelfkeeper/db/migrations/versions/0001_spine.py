"""The spine: service role, tenants, API keys, idempotency keys, locations.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import SERVICE_ROLE, tenant_table_statements

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)


def created_updated() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", TIMESTAMPTZ, nullable=False, server_default=sa.text("now()")),
    ]


def upgrade() -> None:
    op.execute(
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{SERVICE_ROLE}') THEN
            CREATE ROLE {SERVICE_ROLE} NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
          END IF;
        END $$
        """
    )
    op.execute(f"GRANT {SERVICE_ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {SERVICE_ROLE}")

    op.create_table(
        "tenant",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB,
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'active'")),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        *created_updated(),
        sa.CheckConstraint("id ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="ck_tenant_id_slug"),
        sa.CheckConstraint("status IN ('active', 'suspended')", name="ck_tenant_status_known"),
        sa.PrimaryKeyConstraint("id", name="pk_tenant"),
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON tenant TO {SERVICE_ROLE}")

    op.create_table(
        "api_key",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        ),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False),
        sa.Column("key_prefix", sa.Text, nullable=False),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("revoked_at", TIMESTAMPTZ, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_api_key"),
        sa.UniqueConstraint("tenant_id", "key_hash", name="uq_api_key_tenant_id_key_hash"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenant.id"], ondelete="CASCADE", name="fk_api_key_tenant_id_tenant"
        ),
        sa.CheckConstraint("role IN ('admin', 'clerk', 'viewer')", name="ck_api_key_role_known"),
    )

    op.create_table(
        "idempotency_key",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("response_status", sa.Integer, nullable=False),
        sa.Column("response_headers", postgresql.JSONB, nullable=False),
        sa.Column("response_body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", TIMESTAMPTZ, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key", name="pk_idempotency_key"),
    )

    op.create_table(
        "location",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            nullable=False,
            server_default=sa.text("gen_random_uuid()"),
        ),
        sa.Column("code", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("address", postgresql.JSONB, nullable=True),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("priority", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        *created_updated(),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_location"),
        sa.UniqueConstraint("tenant_id", "code", name="uq_location_tenant_id_code"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            ondelete="CASCADE",
            name="fk_location_tenant_id_tenant",
        ),
        sa.CheckConstraint("kind IN ('warehouse', 'store')", name="ck_location_kind_known"),
    )

    for table in ("api_key", "idempotency_key", "location"):
        for statement in tenant_table_statements(table):
            op.execute(statement)


def downgrade() -> None:
    for table in ("location", "idempotency_key", "api_key", "tenant"):
        op.drop_table(table)
