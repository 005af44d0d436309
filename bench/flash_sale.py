"""The flash-sale ceiling, without HTTP: one hot level, 64 clients reserving 1 unit each.

`python -m bench.flash_sale [--clients 64] [--duration 8] [--database-url URL]`

Two sides in one run, each on a fresh level holding more units than can be sold in the run
(so every request succeeds and the row lock, not the stock, is the limit):

- `single`: one transaction per request, issuing the statement the service's plain path
  issues (`inventory.repository.apply`, the one conditional statement with its movement and
  events): the single-statement ceiling.
- `coalesced`: the same requests through `inventory.coalescer.ReservationCoalescer`: one
  transaction, one lock and one statement per batch of whoever is waiting.

Then both levels are checked: `reserved` equals the successes, and the ledger replays to the
level (`find_drift`). Prints one JSON document. The database is created and dropped here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from typing import Any
from uuid import UUID

import asyncpg

from shelfkeeper.auth.principal import Principal, Role
from shelfkeeper.db import migrate
from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.db.rls import SERVICE_ROLE
from shelfkeeper.inventory import repository
from shelfkeeper.inventory import service as inventory_service
from shelfkeeper.inventory.coalescer import ReservationCoalescer
from shelfkeeper.inventory.ledger import find_drift
from shelfkeeper.inventory.repository import Change, Reservation
from shelfkeeper.inventory.schemas import ItemCreate, StockAdjustment
from shelfkeeper.location import service as location_service
from shelfkeeper.location.schemas import LocationCreate
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TENANT = "flash"
STOCK = 10_000_000


def with_database(url: str, database: str) -> str:
    base, _, query = url.partition("?")
    authority, _, _old = base.rpartition("/")
    return f"{authority}/{database}" + (f"?{query}" if query else "")


def percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def seed(database: Database) -> tuple[UUID, dict[str, UUID]]:
    """The tenant, one location, and one stocked item per side; returns their variants."""
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        await tenant_service.create(db, body=TenantCreate(id=TENANT, name="Flash sale"))
    admin = Principal(
        subject="bench", tenant_id=TENANT, roles=frozenset({Role.ADMIN}), credential="jwt"
    )
    variants: dict[str, UUID] = {}
    async with database.tenant_transaction(TENANT) as db:
        location = await location_service.create(
            db, admin, body=LocationCreate(code="WH", name="Warehouse", kind="warehouse")
        )
        for side in ("single", "coalesced"):
            item = await inventory_service.create_item(
                db, admin, body=ItemCreate(sku=f"HOT-{side}", name=f"Hot {side}")
            )
            await inventory_service.adjust(
                db,
                admin,
                item_id=item.id,
                body=StockAdjustment(operation="add", quantity=STOCK, location_id=location.id),
            )
            variants[side] = item.variants[0].id
    return location.id, variants


async def drive(
    clients: int, duration: float, operation: Any
) -> tuple[list[float], int, int, float]:
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + duration
    started = time.monotonic()

    async def client() -> None:
        nonlocal failures
        while time.monotonic() < deadline:
            begun = time.perf_counter()
            if not await operation():
                failures += 1
            latencies.append(time.perf_counter() - begun)

    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.monotonic() - started
    return latencies, len(latencies) - failures, failures, elapsed


def summary(
    side: str, latencies: list[float], successes: int, failures: int, elapsed: float
) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "side": side,
        "operations": len(latencies),
        "successes": successes,
        "failures": failures,
        "elapsed_s": round(elapsed, 2),
        "ops_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(ordered, 0.50) * 1000, 2),
        "p95_ms": round(percentile(ordered, 0.95) * 1000, 2),
        "p99_ms": round(percentile(ordered, 0.99) * 1000, 2),
    }


async def run(server: str, clients: int, duration: float) -> dict[str, Any]:
    name = f"flash_{secrets.token_hex(4)}"
    dsn = with_database(server, name)
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(migrate.upgrade, dsn)
        database = await Database.connect(
            dsn, role=SERVICE_ROLE, min_size=clients, max_size=clients
        )
        batch_pool = await Database.connect(dsn, role=SERVICE_ROLE, min_size=1, max_size=2)
        try:
            location, variants = await seed(database)

            async def single() -> bool:
                change = Change(
                    variant_id=variants["single"],
                    location_id=location,
                    operation="reserve",
                    quantity=1,
                    reason="sale",
                    note=None,
                    reference=None,
                    expected_version=None,
                    allow_backorder=False,
                )
                async with database.tenant_transaction(TENANT) as db:
                    row = await repository.apply(db, tenant_id=TENANT, change=change, actor="bench")
                return row is not None

            coalescer = ReservationCoalescer(batch_pool)

            async def coalesced() -> bool:
                outcome = await coalescer.reserve(
                    tenant_id=TENANT,
                    variant_id=variants["coalesced"],
                    location_id=location,
                    request=Reservation(
                        quantity=1, reason="sale", note=None, reference=None, actor="bench"
                    ),
                )
                return outcome.accepted

            results = []
            for side, operation in (("single", single), ("coalesced", coalesced)):
                results.append(summary(side, *await drive(clients, duration, operation)))
            results[1]["rounds"] = coalescer.rounds
            results[1]["mean_batch"] = round(results[1]["successes"] / max(coalescer.rounds, 1), 1)
            checks = {}
            async with database.tenant_transaction(TENANT) as db:
                for result in results:
                    level = await repository.get_level(
                        db,
                        tenant_id=TENANT,
                        variant_id=variants[result["side"]],
                        location_id=location,
                    )
                    assert level is not None
                    checks[result["side"]] = level["reserved"] == result["successes"]
                drift = await find_drift(db, tenant_id=TENANT)
            return {
                "clients": clients,
                "duration_s": duration,
                "results": results,
                "ratio": round(results[1]["ops_per_s"] / results[0]["ops_per_s"], 2),
                "reserved_matches_successes": checks,
                "ledger_drift": [str(item) for item in drift],
            }
        finally:
            await batch_pool.close()
            await database.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.flash_sale", description=__doc__)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--database-url", default=DEFAULT_SERVER)
    options = parser.parse_args()
    report = asyncio.run(run(options.database_url, options.clients, options.duration))
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    ok = all(report["reserved_matches_successes"].values()) and not report["ledger_drift"]
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
