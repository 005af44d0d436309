"""The audit trails: `audit_entry` (each tenant's) and `platform_audit_entry` (platform
operations), both append-only.

The service role may only read and insert rows (no UPDATE or DELETE grant): an entry, once
written, cannot be changed or removed by the service. Offboarding a tenant still removes
its entries: deleting the `tenant` row cascades, and PostgreSQL runs that referential
action as the table's owner.
"""

from sqlalchemy import Column, ForeignKeyConstraint, Index, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

from shelfkeeper.db.metadata import metadata

audit_entry = Table(
    "audit_entry",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")),
    Column(
        "occurred_at",
        TIMESTAMP(timezone=True),
        nullable=False,
        server_default=text("clock_timestamp()"),
    ),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=True),
    Column("action", Text, nullable=False),
    Column("entity_type", Text, nullable=False),
    Column("entity_id", Text, nullable=True),
    Column("before", JSONB, nullable=True),
    Column("after", JSONB, nullable=True),
    Column("request_id", Text, nullable=True),
    Column("client_address", Text, nullable=True),
    PrimaryKeyConstraint("tenant_id", "id"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
    Index("ix_audit_entry_tenant_id_occurred_at_id", "tenant_id", "occurred_at", "id"),
    Index(
        "ix_audit_entry_tenant_id_entity_type_entity_id_occurred_at",
        "tenant_id",
        "entity_type",
        "entity_id",
        "occurred_at",
    ),
)

platform_audit_entry = Table(
    "platform_audit_entry",
    metadata,
    Column("id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")),
    Column(
        "occurred_at",
        TIMESTAMP(timezone=True),
        nullable=False,
        server_default=text("clock_timestamp()"),
    ),
    Column("target_tenant_id", Text, nullable=True),
    Column("actor", Text, nullable=False),
    Column("role", Text, nullable=True),
    Column("action", Text, nullable=False),
    Column("entity_type", Text, nullable=False),
    Column("entity_id", Text, nullable=True),
    Column("before", JSONB, nullable=True),
    Column("after", JSONB, nullable=True),
    Column("request_id", Text, nullable=True),
    Column("client_address", Text, nullable=True),
    PrimaryKeyConstraint("id"),
    Index(
        "ix_platform_audit_entry_target_tenant_id_occurred_at_id",
        "target_tenant_id",
        "occurred_at",
        "id",
    ),
)
"""The platform trail: one entry per platform operation (tenant lifecycle, export, the
command line's mutations). `target_tenant_id` names the tenant the operation concerned,
without a foreign key (the entry of a deletion outlives the tenant) and deliberately not
as `tenant_id`: a `tenant_id` column makes a table tenant-owned (exported and isolated per
tenant). Readable and insertable only in the platform scope (row-level security), never
updated or deleted by the service (no grant)."""
