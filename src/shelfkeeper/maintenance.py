"""Housekeeping that visits every tenant in turn: cross-tenant by design, kept in one place.

Each pass binds one tenant at a time (row-level security stays on) and
- expires reservations (checkout holds) past their expiry, releasing their units with
  movement reason `expired` (requests that need those units expire them at once anyway;
  this keeps `reserved` honest for readers);
- deletes stored `Idempotency-Key` responses past their retention;
- cancels pending orders with nothing paid past the tenant's `unpaid_order_expiry_minutes`
  (when set), releasing their stock, as `system`.

Expiring holds and cancelling orders are audited (actor `system`) in their transactions,
and their stock movements and order transitions counted once those commit.

It runs inside `shelfkeeper serve` every `SHELFKEEPER_MAINTENANCE_INTERVAL_SECONDS`; with
several workers or instances each runs it, which is harmless: every step is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from shelfkeeper.audit import service as audit_service
from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.inventory import reservation_service
from shelfkeeper.kit import idempotency
from shelfkeeper.order import service as order_service
from shelfkeeper.tenant import service as tenant_service

logger = logging.getLogger("shelfkeeper.maintenance")

SWEEP_BATCH = 100
"""Holds expired per transaction: short transactions, bounded lock sets."""


@dataclass(frozen=True)
class PassReport:
    tenants: int
    holds_expired: int
    idempotency_keys_purged: int
    unpaid_orders_canceled: int = 0


async def run_once(database: Database, *, now: datetime | None = None) -> PassReport:
    """One pass over every tenant (and the platform scope). `now` (default: the clock)
    decides which unpaid orders are due."""
    moment = now or datetime.now(UTC)
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        tenant_ids = await tenant_service.all_ids(db)
        # Read in the platform scope: no tenant transaction for a tenant that sets none.
        expiry_minutes = {
            tenant_id: minutes
            for tenant_id in tenant_ids
            if (
                minutes := (
                    await tenant_service.get(db, tenant_id=tenant_id)
                ).settings.unpaid_order_expiry_minutes
            )
            is not None
        }
    purged = expired = 0
    for scope in [PLATFORM_SCOPE, *tenant_ids]:
        async with database.tenant_transaction(scope) as db:
            purged += await idempotency.purge_expired(db, scope=scope)
    for tenant_id in tenant_ids:
        while True:
            async with audit_service.audited_transaction(database, tenant_id) as db:
                batch = await reservation_service.expire_due(
                    db, tenant_id=tenant_id, limit=SWEEP_BATCH
                )
            expired += batch
            if batch < SWEEP_BATCH:
                break
    canceled = 0
    for tenant_id, minutes in expiry_minutes.items():
        while True:
            async with audit_service.audited_transaction(database, tenant_id) as db:
                batch = await order_service.expire_unpaid(
                    db, tenant_id=tenant_id, minutes=minutes, now=moment, limit=SWEEP_BATCH
                )
            canceled += batch
            if batch < SWEEP_BATCH:
                break
    return PassReport(
        tenants=len(tenant_ids),
        holds_expired=expired,
        idempotency_keys_purged=purged,
        unpaid_orders_canceled=canceled,
    )


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
                "maintenance pass: %d tenants, %d holds expired, %d idempotency keys purged",
                report.tenants,
                report.holds_expired,
                report.idempotency_keys_purged,
            )
