"""Tables owned by the shared kit: stored responses for `Idempotency-Key`."""

from sqlalchemy import Column, Integer, LargeBinary, PrimaryKeyConstraint, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

from shelfkeeper.db.metadata import metadata

idempotency_key = Table(
    "idempotency_key",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    Column("response_status", Integer, nullable=False),
    Column("response_headers", JSONB, nullable=False),
    Column("response_body", LargeBinary, nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    Column("expires_at", TIMESTAMP(timezone=True), nullable=False),
    PrimaryKeyConstraint("tenant_id", "key"),
)
