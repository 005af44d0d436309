"""The `event` table: the transactional outbox.

A state change inserts its event in the same transaction, with `sequence` NULL. Writers only
ever INSERT, so recording events never serialises unrelated changes on a shared row. The
per-tenant `sequence` is assigned later by the relay, in commit order, to rows that are
already committed (see docs/events.md); `written` (an identity) orders events written in the
same microsecond as they were written.
"""

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKeyConstraint,
    Identity,
    Index,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP, UUID

from shelfkeeper.db.metadata import metadata

event = Table(
    "event",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")),
    Column("type", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("data", JSONB, nullable=False),
    Column(
        "time", TIMESTAMP(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    ),
    Column("sequence", BigInteger, nullable=True),
    Column("written", BigInteger, Identity(always=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "id"),
    UniqueConstraint("tenant_id", "sequence"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
    Index(
        "ix_event_unsequenced",
        "tenant_id",
        "time",
        "written",
        postgresql_where=text("sequence IS NULL"),
    ),
)

event_cursor = Table(
    "event_cursor",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("consumer", Text, nullable=False),
    Column("sequence", BigInteger, nullable=False, server_default=text("0")),
    Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("tenant_id", "consumer"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
)
"""How far each publisher (`consumer`, e.g. `nats:SHELFKEEPER`) has published a tenant's
sequenced events: the last `sequence` it published (0: none yet). See event/broker.py."""
