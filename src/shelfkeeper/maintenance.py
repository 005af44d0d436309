"""Housekeeping that visits every tenant in turn: cross-tenant by design, kept in one place.

Each pass binds one tenant at a time (row-level security stays on) and
- deletes stored `Idempotency-Key` responses past their retention.

It runs inside `shelfkeeper serve` every `SHELFKEEPER_MAINTENANCE_INTERVAL_SECONDS`; with
several workers or instances each runs it, which is harmless: every step is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.kit import idempotency
from shelfkeeper.tenant import service as tenant_service

logger = logging.getLogger("shelfkeeper.maintenance")


@dataclass(frozen=True)
class PassReport:
    tenants: int
    idempotency_keys_purged: int


async def run_once(database: Database) -> PassReport:
    """One pass over every tenant (and the platform scope)."""
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        tenant_ids = await tenant_service.all_ids(db)
    purged = 0
    for scope in [PLATFORM_SCOPE, *tenant_ids]:
        async with database.tenant_transaction(scope) as db:
            purged += await idempotency.purge_expired(db, scope=scope)
    return PassReport(tenants=len(tenant_ids), idempotency_keys_purged=purged)


async def run_forever(database: Database, *, interval_seconds: float) -> None:
    """Run a pass every `interval_seconds` until cancelled; a failed pass is logged, not fatal."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            report = await run_once(database)
        except Exception:
            logger.exception("maintenance pass failed")
        else:
            logger.info(
                "maintenance pass: %d tenants, %d idempotency keys purged",
                report.tenants,
                report.idempotency_keys_purged,
            )
