"""`tenant_data_key.scheme`: how each data key is wrapped.

1: under a key derived from the master key alone (every key that exists already);
2: under a key derived from the master key and the tenant's key share, which is kept
outside the database (docs/privacy.md, "Backups and shredding"). New keys use scheme 2;
`shelfkeeper keys rewrap` moves scheme-1 keys to scheme 2.

Downgrading is refused while a scheme-2 key exists: older code would try to unwrap it
without its share and fail.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tenant_data_key",
        sa.Column("scheme", sa.SmallInteger, nullable=False, server_default=sa.text("1")),
    )
    op.create_check_constraint(
        "ck_tenant_data_key_scheme_known", "tenant_data_key", "scheme IN (1, 2)"
    )


def downgrade() -> None:
    # Row-level security is forced on the owner too: count under each tenant's binding.
    connection = op.get_bind()
    remaining = 0
    for (tenant_id,) in connection.execute(sa.text("SELECT id FROM tenant")).all():
        connection.execute(
            sa.text("SELECT set_config('app.tenant_id', :tenant, true)"), {"tenant": tenant_id}
        )
        remaining += connection.execute(
            sa.text("SELECT count(*) FROM tenant_data_key WHERE scheme = 2")
        ).scalar_one()
    connection.execute(sa.text("SELECT set_config('app.tenant_id', '', true)"))
    if remaining:
        raise RuntimeError(
            f"{remaining} data key(s) are wrapped with a key share (scheme 2): older versions "
            "cannot unwrap them"
        )
    op.drop_constraint("ck_tenant_data_key_scheme_known", "tenant_data_key", type_="check")
    op.drop_column("tenant_data_key", "scheme")
