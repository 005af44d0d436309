"""Which tenants have events the NATS publisher has not published: its polling.

The publisher visited every tenant every poll interval (one transaction each: some 2,000
transactions a second with 10,000 tenants and a 5 s interval, whether or not anything
happened; docs/benchmarks.md "Not built yet"). `shelfkeeper_unpublished_tenants(consumer)`
names only the tenants whose newest sequenced event is past the consumer's cursor (no
cursor counts as 0), ids only, like migration 0015's functions, and on the same terms:
`SECURITY DEFINER`, executable by the service role only.

The tenants are enumerated by a loose index scan of `event`'s `(tenant_id, sequence)`
unique index (one probe per tenant that has events, never a scan of the events), and each
one's newest sequence and cursor are one index probe each.

The owner's read-only `pending_work_scan` policy on `event` widens from the unsequenced
rows to every row (the new function reads sequenced ones; both functions still return
tenant ids only), and `event_cursor` gets one too. The service role's view is unchanged.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

from shelfkeeper.db.rls import SERVICE_ROLE

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FUNCTION = "shelfkeeper_unpublished_tenants(text)"


def upgrade() -> None:
    op.execute("DROP POLICY pending_work_scan ON event")
    op.execute(
        "CREATE POLICY pending_work_scan ON event AS PERMISSIVE FOR SELECT "
        "TO CURRENT_USER USING (true)"
    )
    op.execute(
        "CREATE POLICY pending_work_scan ON event_cursor AS PERMISSIVE FOR SELECT "
        "TO CURRENT_USER USING (true)"
    )
    op.execute(
        """
        CREATE FUNCTION shelfkeeper_unpublished_tenants(consumer text) RETURNS SETOF text
        LANGUAGE sql STABLE SECURITY DEFINER
        SET search_path = pg_catalog, public
        AS $$
            WITH RECURSIVE tenants(id) AS (
                (SELECT tenant_id FROM public.event ORDER BY tenant_id LIMIT 1)
                UNION ALL
                SELECT (
                    SELECT e.tenant_id FROM public.event AS e
                    WHERE e.tenant_id > t.id ORDER BY e.tenant_id LIMIT 1
                )
                FROM tenants AS t
                WHERE t.id IS NOT NULL
            )
            SELECT t.id FROM tenants AS t
            WHERE t.id IS NOT NULL
              AND (
                  SELECT e.sequence FROM public.event AS e
                  WHERE e.tenant_id = t.id AND e.sequence IS NOT NULL
                  ORDER BY e.sequence DESC LIMIT 1
              ) > COALESCE(
                  (
                      SELECT c.sequence FROM public.event_cursor AS c
                      WHERE c.tenant_id = t.id AND c.consumer = $1
                  ),
                  0
              )
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {FUNCTION} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {FUNCTION} TO {SERVICE_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {FUNCTION}")
    op.execute("DROP POLICY pending_work_scan ON event_cursor")
    op.execute("DROP POLICY pending_work_scan ON event")
    op.execute(
        "CREATE POLICY pending_work_scan ON event AS PERMISSIVE FOR SELECT "
        "TO CURRENT_USER USING (sequence IS NULL)"
    )
