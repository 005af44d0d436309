"""`stock_level`'s location index covers the variant too.

Every movement insert checks its foreign key to `stock_level` (tenant, variant, location).
PostgreSQL caches that check's plan, and after five executions on a connection it may use
the generic plan; on a tenant with a hundred thousand levels the generic plan chose
`ix_stock_level_tenant_id_location_id` (tenant, location) and scanned every level of the
location: 10.6 ms instead of 0.09 ms per insert (docs/benchmarks.md, "Scale"). With the
variant in that index too, either index finds the one row.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_stock_level_tenant_id_location_id_variant_id",
        "stock_level",
        ["tenant_id", "location_id", "variant_id"],
    )
    op.drop_index("ix_stock_level_tenant_id_location_id", table_name="stock_level")


def downgrade() -> None:
    op.create_index(
        "ix_stock_level_tenant_id_location_id", "stock_level", ["tenant_id", "location_id"]
    )
    op.drop_index("ix_stock_level_tenant_id_location_id_variant_id", table_name="stock_level")
