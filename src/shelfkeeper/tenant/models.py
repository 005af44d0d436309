"""Tables of the tenant domain (the `tenant` table itself is platform-level, not tenant-owned)."""

from sqlalchemy import (
    CheckConstraint,
    Column,
    Integer,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

from shelfkeeper.db.metadata import metadata

tenant = Table(
    "tenant",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("settings", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("status", Text, nullable=False, server_default=text("'active'")),
    Column("version", Integer, nullable=False, server_default=text("1")),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    CheckConstraint("id ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name="id_slug"),
    CheckConstraint("status IN ('active', 'suspended')", name="status_known"),
)
