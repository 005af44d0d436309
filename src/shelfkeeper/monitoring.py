"""The domain gauges' sampler: reads every tenant's outbox backlog and low-stock count for
`/metrics`. Cross-tenant by design, kept in one place like the relay and housekeeping.

One read-only transaction visits the tenants in turn, binding each before reading its rows
(row-level security stays on): three short statements per tenant, run at most every
`observability.metrics.SAMPLE_INTERVAL_SECONDS`, and only when scraped.
"""

from __future__ import annotations

from shelfkeeper.db.database import PLATFORM_SCOPE, Database, bind_tenant
from shelfkeeper.event import service as event_service
from shelfkeeper.inventory import service as inventory_service
from shelfkeeper.observability.metrics import TenantSample
from shelfkeeper.tenant import service as tenant_service


async def sample(database: Database) -> list[TenantSample]:
    """Every tenant's unsequenced events (count, oldest's age) and low stock levels."""
    samples = []
    async with database.transaction(readonly=True) as db:
        await bind_tenant(db, PLATFORM_SCOPE)
        tenant_ids = await tenant_service.all_ids(db)
        for tenant_id in tenant_ids:
            await bind_tenant(db, tenant_id)
            count, oldest_age = await event_service.backlog(db, tenant_id=tenant_id)
            low = await inventory_service.low_stock_count(db, tenant_id=tenant_id)
            samples.append(TenantSample(tenant_id, count, oldest_age, low))
    return samples
