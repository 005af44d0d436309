"""The webhook tables: endpoints, their deliveries (one per endpoint and event), and each
delivery's attempts.

`webhook_endpoint.secret` is the signing key, sealed under the tenant's data key (it must be
usable for HMAC, so it cannot be hashed; migration 0013 has the details). A delivery is
created by the relay in the transaction that numbers its event, and its `event_sequence` and
`subject` are copied from the event so the dispatcher can order a subject's deliveries
without a join.
"""

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP, UUID

from shelfkeeper.db.metadata import metadata

webhook_endpoint = Table(
    "webhook_endpoint",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")),
    Column("url", Text, nullable=False),
    Column("events", ARRAY(Text), nullable=False),
    Column("description", Text, nullable=True),
    Column("secret", LargeBinary, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("consecutive_failures", Integer, nullable=False, server_default=text("0")),
    Column("disabled_at", TIMESTAMP(timezone=True), nullable=True),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_by", Text, nullable=False),
    Column("updated_by", Text, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("tenant_id", "id"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
    CheckConstraint("cardinality(events) > 0", name="events_present"),
)

webhook_delivery = Table(
    "webhook_delivery",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")),
    Column("endpoint_id", UUID(as_uuid=True), nullable=False),
    Column("event_id", UUID(as_uuid=True), nullable=False),
    Column("event_sequence", BigInteger, nullable=False),
    Column("subject", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'pending'")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("scheduled_attempts", Integer, nullable=False, server_default=text("0")),
    Column(
        "next_attempt_at",
        TIMESTAMP(timezone=True),
        nullable=False,
        server_default=text("clock_timestamp()"),
    ),
    Column("locked_until", TIMESTAMP(timezone=True), nullable=True),
    Column("lease", UUID(as_uuid=True), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", TIMESTAMP(timezone=True), nullable=True),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("tenant_id", "id"),
    ForeignKeyConstraint(
        ["tenant_id", "endpoint_id"],
        ["webhook_endpoint.tenant_id", "webhook_endpoint.id"],
        ondelete="CASCADE",
    ),
    ForeignKeyConstraint(
        ["tenant_id", "event_id"], ["event.tenant_id", "event.id"], ondelete="CASCADE"
    ),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status_known"),
    Index(
        "ix_webhook_delivery_due",
        "tenant_id",
        "next_attempt_at",
        postgresql_where=text("status = 'pending'"),
    ),
    Index(
        "ix_webhook_delivery_subject",
        "tenant_id",
        "endpoint_id",
        "subject",
        "event_sequence",
        postgresql_where=text("status = 'pending'"),
    ),
    Index("ix_webhook_delivery_endpoint_created", "tenant_id", "endpoint_id", "created_at", "id"),
    Index("ix_webhook_delivery_tenant_id_event_id", "tenant_id", "event_id"),
)

webhook_attempt = Table(
    "webhook_attempt",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("delivery_id", UUID(as_uuid=True), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", TIMESTAMP(timezone=True), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_seconds", Double, nullable=False),
    Column("error", Text, nullable=True),
    PrimaryKeyConstraint("tenant_id", "delivery_id", "attempt"),
    ForeignKeyConstraint(
        ["tenant_id", "delivery_id"],
        ["webhook_delivery.tenant_id", "webhook_delivery.id"],
        ondelete="CASCADE",
    ),
)
