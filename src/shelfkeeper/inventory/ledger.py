"""Ledger integrity: recompute every stock level from its movements and report drift.

Each movement records the level's state after it (`on_hand_after`, `reserved_after`) and the
level's version (`level_version`, consecutive from 1). Replaying a level's movements in
version order must reproduce every recorded state and, at the end, the level itself. Any
difference is drift: a change that bypassed the ledger, or a ledger row that was altered.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from shelfkeeper.db.database import Connection

DRIFT_QUERY = """
WITH replay AS (
    SELECT m.tenant_id, m.variant_id, m.location_id, m.level_version, m.operation,
           m.quantity, m.on_hand_after, m.reserved_after,
           lag(m.on_hand_after, 1, 0::bigint) OVER level AS on_hand_before,
           lag(m.reserved_after, 1, 0::bigint) OVER level AS reserved_before,
           lag(m.level_version, 1, 0) OVER level AS version_before
    FROM stock_movement m
    WHERE m.tenant_id = $1
    WINDOW level AS (PARTITION BY m.variant_id, m.location_id ORDER BY m.level_version)
),
broken_movements AS (
    SELECT variant_id, location_id, level_version,
           'movement ' || level_version || ' (' || operation || ' ' || quantity
             || ') does not follow from the one before' AS problem
    FROM replay
    WHERE level_version <> version_before + 1
       OR on_hand_after <> CASE operation
              WHEN 'add' THEN on_hand_before + quantity
              WHEN 'subtract' THEN on_hand_before - quantity
              WHEN 'set' THEN quantity
              ELSE on_hand_before END
       OR reserved_after <> CASE operation
              WHEN 'reserve' THEN reserved_before + quantity
              WHEN 'release' THEN reserved_before - quantity
              ELSE reserved_before END
),
last_movement AS (
    SELECT DISTINCT ON (variant_id, location_id)
           variant_id, location_id, level_version, on_hand_after, reserved_after
    FROM replay
    ORDER BY variant_id, location_id, level_version DESC
),
broken_levels AS (
    SELECT s.variant_id, s.location_id, s.version AS level_version,
           'level holds on_hand=' || s.on_hand || ' reserved=' || s.reserved
             || ' version=' || s.version || ' but its ledger gives on_hand='
             || coalesce(l.on_hand_after, 0) || ' reserved=' || coalesce(l.reserved_after, 0)
             || ' version=' || coalesce(l.level_version, 0) AS problem
    FROM stock_level s
    LEFT JOIN last_movement l ON l.variant_id = s.variant_id AND l.location_id = s.location_id
    WHERE s.tenant_id = $1
      AND (s.on_hand, s.reserved, s.version)
          IS DISTINCT FROM (coalesce(l.on_hand_after, 0), coalesce(l.reserved_after, 0),
                            coalesce(l.level_version, 0))
)
SELECT * FROM broken_movements
UNION ALL
SELECT * FROM broken_levels
ORDER BY variant_id, location_id, level_version
"""


@dataclass(frozen=True)
class Drift:
    tenant_id: str
    variant_id: UUID
    location_id: UUID
    level_version: int
    problem: str


async def find_drift(db: Connection, *, tenant_id: str) -> list[Drift]:
    """Every inconsistency between the tenant's levels and its ledger (empty when sound).

    Runs in the caller's transaction, which must be bound to `tenant_id`.
    """
    rows = await db.fetch(DRIFT_QUERY, tenant_id)
    return [
        Drift(
            tenant_id=tenant_id,
            variant_id=row["variant_id"],
            location_id=row["location_id"],
            level_version=row["level_version"],
            problem=row["problem"],
        )
        for row in rows
    ]
