"""The `tenant_data_key` table: each tenant's data keys, stored only wrapped.

`version` numbers a tenant's keys (1, 2, ...; sealed values name the version they were
sealed under); `master_key` is the fingerprint of the master key that wrapped it; `scheme`
says how (1: the master key alone; 2: the master key and the tenant's key share, kept
outside the database). Deleting a tenant's rows and its share destroys its keys: what they
sealed cannot be opened again, from the database or from a backup of it.
"""

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import TIMESTAMP

from shelfkeeper.db.metadata import metadata

tenant_data_key = Table(
    "tenant_data_key",
    metadata,
    Column("tenant_id", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("wrapped_key", LargeBinary, nullable=False),
    Column("master_key", Text, nullable=False),
    Column("scheme", SmallInteger, nullable=False, server_default=text("1")),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),
    PrimaryKeyConstraint("tenant_id", "version"),
    ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
    CheckConstraint("version >= 1", name="version_positive"),
    CheckConstraint("scheme IN (1, 2)", name="scheme_known"),
)
