"""Order numbering: counter incremented last (the design) vs. first, under concurrency.

    .venv/bin/python -m bench.order_numbering [--orders 40] [--rounds 7] [--pool 20]

Places `--orders` single-line orders on distinct SKUs at once through the in-process app,
`--rounds` times per design, on a fresh migrated database (the test server at
127.0.0.1:5432, or an embedded one), and prints the wall time of each burst and the mean
latency of its requests. "first" is the design this project rejects: the counter row is
incremented before the order's stock is reserved, so its lock is held during all the stock
work of the transaction and unrelated orders queue behind each other.

`--latency-ms` adds that much delay before every statement, as a network between the
service and PostgreSQL would (the in-process default has next to none, and then Python's
own work, not lock waits, dominates the burst).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
from tests.database import migrated_database

from shelfkeeper.app import create_app
from shelfkeeper.auth.tokens import issue_token
from shelfkeeper.config import Settings
from shelfkeeper.db import migrate
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from shelfkeeper.order import repository, service
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate

SECRET = "bench-secret-0123456789abcdef0123456789abcdef"


def add_latency(seconds: float) -> None:
    """Delay every statement by `seconds`, like a network round trip."""
    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        original = getattr(asyncpg.Connection, name)

        def delayed(original: Any = original) -> Any:
            async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
                await asyncio.sleep(seconds)
                return await original(self, *args, **kwargs)

            return call

        setattr(asyncpg.Connection, name, delayed())


def counter_first() -> Callable[[], None]:
    """Switch the service to incrementing the counter first (before the order's stock is
    reserved, so its lock is held through the stock work); returns the undo."""
    reserve, assign = service._reserve, repository.assign_number
    numbers: dict[UUID, int] = {}

    async def number_then_reserve(db: Connection, principal: Any, **arguments: Any) -> Any:
        order_id = UUID(arguments["reference"].removeprefix("order:"))
        numbers[order_id] = await db.fetchval(
            """
            INSERT INTO order_counter AS c (tenant_id, last) VALUES ($1, 1)
            ON CONFLICT (tenant_id) DO UPDATE SET last = c.last + 1
            RETURNING c.last
            """,
            principal.tenant_id,
        )
        return await reserve(db, principal, **arguments)

    async def numbered_already(
        db: Connection, *, tenant_id: str, order_id: UUID, event: repository.NumberedEvent
    ) -> int:
        number = numbers.pop(order_id)
        await db.execute(
            "UPDATE sales_order SET number = $3 WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            order_id,
            number,
        )
        await event_service.record(
            db,
            tenant_id=tenant_id,
            type=EventType(event.type),
            subject=event.subject,
            data={**event.data, "number": number},
        )
        return number

    service._reserve = number_then_reserve
    repository.assign_number = numbered_already

    def undo() -> None:
        service._reserve, repository.assign_number = reserve, assign

    return undo


async def burst(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], skus: list[str]
) -> tuple[float, float]:
    """Place one order per SKU at once: (wall seconds, mean request seconds)."""
    latencies: list[float] = []

    async def one(sku: str) -> None:
        started = time.perf_counter()
        response = await client.post(
            url,
            json={
                "customer": {"email": "bench@example.com"},
                "currency": "USD",
                "lines": [{"sku": sku, "quantity": 1, "unit_price": "1.00"}],
            },
            headers=headers,
        )
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 201, response.text

    started = time.perf_counter()
    await asyncio.gather(*(one(sku) for sku in skus))
    return time.perf_counter() - started, statistics.fmean(latencies)


async def measure(
    dsn: str, data_dir: Path, *, orders: int, rounds: int, pool: int, latency_ms: float
) -> None:
    settings = Settings(database_url=dsn, data_dir=data_dir, jwt_secret=SECRET)
    database = await Database.connect(dsn, role=migrate.SERVICE_ROLE, min_size=pool, max_size=pool)
    app = create_app(settings, database=database)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        async with database.tenant_transaction(PLATFORM_SCOPE) as db:
            await tenant_service.create(db, body=TenantCreate(id="bench", name="Bench"))
        headers = {
            "Authorization": "Bearer "
            + issue_token(settings, subject="bench", tenant_id="bench", roles=["admin"])
        }
        location = await client.post(
            "/api/v1/bench/locations",
            json={"code": "WH", "name": "WH", "kind": "warehouse"},
            headers=headers,
        )
        skus = [f"SKU-{index}" for index in range(orders)]
        for sku in skus:
            item = await client.post(
                "/api/v1/bench/inventory", json={"sku": sku, "name": sku}, headers=headers
            )
            await client.patch(
                f"/api/v1/bench/inventory/{item.json()['id']}/stock",
                json={"operation": "add", "quantity": 10**6, "location_id": location.json()["id"]},
                headers=headers,
            )
        results: dict[str, list[tuple[float, float]]] = {"last": [], "first": []}
        url = "/api/v1/bench/orders"
        await burst(client, url, headers, skus)  # warm up
        for _ in range(rounds):
            for design in ("last", "first"):
                undo = counter_first() if design == "first" else (lambda: None)
                try:
                    results[design].append(await burst(client, url, headers, skus))
                finally:
                    undo()
    await database.close()
    sys.stdout.write(
        f"{orders} concurrent single-line orders on distinct SKUs, pool {pool}, {rounds} rounds, "
        f"latency {latency_ms} ms per statement\n"
    )
    for design, runs in results.items():
        walls = [wall for wall, _ in runs]
        means = [mean for _, mean in runs]
        sys.stdout.write(
            f"counter {design:5}: burst median {statistics.median(walls) * 1000:7.1f} ms "
            f"(min {min(walls) * 1000:.1f}, max {max(walls) * 1000:.1f}); "
            f"mean request latency median {statistics.median(means) * 1000:7.1f} ms\n"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pool", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, migrated_database(Path(scratch)) as dsn:
        if arguments.latency_ms:
            add_latency(arguments.latency_ms / 1000)
        asyncio.run(
            measure(
                dsn,
                Path(scratch),
                orders=arguments.orders,
                rounds=arguments.rounds,
                pool=arguments.pool,
                latency_ms=arguments.latency_ms,
            )
        )


if __name__ == "__main__":
    main()
