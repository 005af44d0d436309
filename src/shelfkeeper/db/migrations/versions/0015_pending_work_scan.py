"""Which tenants have work waiting: the relay's and the webhook dispatcher's polling.

Both used to visit every tenant on every poll (one transaction each: about 10,000 per round
with 10,000 tenants, docs/benchmarks.md "Profile" item 8). Two functions now name only the
tenants with work, across tenants and nothing but their ids:

- `shelfkeeper_unsequenced_tenants()`: tenants with events the relay has not numbered;
- `shelfkeeper_due_delivery_tenants()`: tenants with webhook deliveries due now.

They are `SECURITY DEFINER` (they run as the schema's owner) and executable by the service
role only. Row-level security still applies to the owner (FORCE), so each table gets one
more policy, `pending_work_scan`: for SELECT only, for the owner only (never the service
role), showing the pending rows of every tenant. A superuser owner bypasses row-level
security anyway. The service role's own view of the tables is unchanged.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

from shelfkeeper.db.rls import SERVICE_ROLE

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTIONS = {
    "shelfkeeper_unsequenced_tenants": (
        "event",
        "sequence IS NULL",
        "SELECT DISTINCT tenant_id FROM public.event WHERE sequence IS NULL",
    ),
    "shelfkeeper_due_delivery_tenants": (
        "webhook_delivery",
        "status = 'pending'",
        "SELECT DISTINCT tenant_id FROM public.webhook_delivery "
        "WHERE status = 'pending' AND next_attempt_at <= now()",
    ),
}


def upgrade() -> None:
    for function, (table, pending, query) in FUNCTIONS.items():
        op.execute(
            f"CREATE POLICY pending_work_scan ON {table} AS PERMISSIVE FOR SELECT "
            f"TO CURRENT_USER USING ({pending})"
        )
        op.execute(
            f"""
            CREATE FUNCTION {function}() RETURNS SETOF text
            LANGUAGE sql STABLE SECURITY DEFINER
            SET search_path = pg_catalog, public
            AS $$ {query} $$
            """
        )
        op.execute(f"REVOKE ALL ON FUNCTION {function}() FROM PUBLIC")
        op.execute(f"GRANT EXECUTE ON FUNCTION {function}() TO {SERVICE_ROLE}")


def downgrade() -> None:
    for function, (table, _, _) in FUNCTIONS.items():
        op.execute(f"DROP FUNCTION {function}()")
        op.execute(f"DROP POLICY pending_work_scan ON {table}")
