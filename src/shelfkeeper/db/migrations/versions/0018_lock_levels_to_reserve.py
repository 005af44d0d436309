"""Reserving at several levels all or nothing, in one statement without a client savepoint.

`shelfkeeper_lock_levels_to_reserve(tenant, variants, locations, quantities)` locks the
given stock levels in the global lock order (variant id, location id) and answers whether
every one of them exists and can take its quantity under the `reserve` rule
(`allow_backorder OR on_hand - reserved >= quantity`, on each level as it is once locked).
When one cannot, its locks are dropped before it answers false: the work runs in a block
with an exception handler (a subtransaction), which it rolls back by raising. So
`inventory.repository.reserve_levels` can decide and reserve in one statement, and a
refusal leaves no level locked behind (the retry that follows locks holds, then levels, and
must hold nothing out of order), which used to take a SAVEPOINT and a RELEASE from the
client around the statement, two more round trips for every order (docs/benchmarks.md,
"Order placement").

`SECURITY INVOKER` (the default): it runs as the service role, under row-level security
and the transaction's tenant binding, like the statement that calls it. Executable by the
service role only.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

from shelfkeeper.db.rls import SERVICE_ROLE

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "shelfkeeper_lock_levels_to_reserve(text, uuid[], uuid[], bigint[])"


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION shelfkeeper_lock_levels_to_reserve(
            tenant text, variants uuid[], locations uuid[], quantities bigint[]
        ) RETURNS boolean
        LANGUAGE plpgsql VOLATILE
        SET search_path = pg_catalog, public
        AS $$
        DECLARE
            locked integer;
            fitting boolean;
        BEGIN
            BEGIN
                SELECT count(*), coalesce(bool_and(level.fits), false)
                INTO locked, fitting
                FROM (
                    SELECT s.allow_backorder OR s.on_hand - s.reserved >= w.quantity AS fits
                    FROM stock_level s
                    JOIN unnest(variants, locations, quantities)
                         AS w(variant_id, location_id, quantity)
                      ON w.variant_id = s.variant_id AND w.location_id = s.location_id
                    WHERE s.tenant_id = tenant
                    ORDER BY s.variant_id, s.location_id
                    FOR NO KEY UPDATE OF s
                ) AS level;
                IF locked <> cardinality(variants) OR NOT fitting THEN
                    RAISE EXCEPTION 'refused' USING ERRCODE = 'SK409';
                END IF;
                RETURN true;
            EXCEPTION WHEN SQLSTATE 'SK409' THEN
                RETURN false;
            END;
        END
        $$
        """
    )
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {SERVICE_ROLE}")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
