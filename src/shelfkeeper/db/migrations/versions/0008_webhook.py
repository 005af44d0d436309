"""Webhook endpoints, deliveries and attempts.

`webhook_endpoint` holds each endpoint's URL, subscribed event types and signing secret (as
is: it must be usable for HMAC; encrypting it at rest is the privacy work's);
`webhook_delivery` one row per endpoint and event, created by the relay when it numbers the
event, with its retry state and lease; `webhook_attempt` the log of every attempt. See
docs/webhooks.md.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import tenant_table_statements

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)
UUID = postgresql.UUID(as_uuid=True)
TABLES = ("webhook_endpoint", "webhook_delivery", "webhook_attempt")


def now(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, TIMESTAMPTZ, nullable=False, server_default=sa.text("now()"))


def new_id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", UUID, nullable=False, server_default=sa.text("gen_random_uuid()"))


def upgrade() -> None:
    op.create_table(
        "webhook_endpoint",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("secret", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("consecutive_failures", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("disabled_at", TIMESTAMPTZ, nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        now("created_at"),
        now("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_webhook_endpoint"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            ondelete="CASCADE",
            name="fk_webhook_endpoint_tenant_id_tenant",
        ),
        sa.CheckConstraint("cardinality(events) > 0", name="ck_webhook_endpoint_events_present"),
    )

    op.create_table(
        "webhook_delivery",
        sa.Column("tenant_id", sa.Text, nullable=False),
        new_id(),
        sa.Column("endpoint_id", UUID, nullable=False),
        sa.Column("event_id", UUID, nullable=False),
        sa.Column("event_sequence", sa.BigInteger, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("scheduled_attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column(
            "next_attempt_at",
            TIMESTAMPTZ,
            nullable=False,
            server_default=sa.text("clock_timestamp()"),
        ),
        sa.Column("locked_until", TIMESTAMPTZ, nullable=True),
        sa.Column("lease", UUID, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("delivered_at", TIMESTAMPTZ, nullable=True),
        now("created_at"),
        now("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name="pk_webhook_delivery"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"],
            ["webhook_endpoint.tenant_id", "webhook_endpoint.id"],
            ondelete="CASCADE",
            name="fk_webhook_delivery_tenant_id_endpoint_id_webhook_endpoint",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "event_id"],
            ["event.tenant_id", "event.id"],
            ondelete="CASCADE",
            name="fk_webhook_delivery_tenant_id_event_id_event",
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed')", name="ck_webhook_delivery_status_known"
        ),
    )
    op.create_index(
        "ix_webhook_delivery_due",
        "webhook_delivery",
        ["tenant_id", "next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_delivery_subject",
        "webhook_delivery",
        ["tenant_id", "endpoint_id", "subject", "event_sequence"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_webhook_delivery_endpoint_created",
        "webhook_delivery",
        ["tenant_id", "endpoint_id", "created_at", "id"],
    )
    op.create_index(
        "ix_webhook_delivery_tenant_id_event_id", "webhook_delivery", ["tenant_id", "event_id"]
    )

    op.create_table(
        "webhook_attempt",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("delivery_id", UUID, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", TIMESTAMPTZ, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("latency_seconds", sa.Double, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "delivery_id", "attempt", name="pk_webhook_attempt"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "delivery_id"],
            ["webhook_delivery.tenant_id", "webhook_delivery.id"],
            ondelete="CASCADE",
            name="fk_webhook_attempt_tenant_id_delivery_id_webhook_delivery",
        ),
    )

    for table in TABLES:
        for statement in tenant_table_statements(table):
            op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_table(table)
