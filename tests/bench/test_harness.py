"""The benchmark harness's own arithmetic and the scale generator, on a tiny scale."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from bench.__main__ import growth, profile_summary
from bench.load import percentile, summary

from bench import plots, scale
from shelfkeeper.auth.principal import Principal, Role
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database, bind_tenant
from shelfkeeper.db.migrate import SERVICE_ROLE
from shelfkeeper.inventory.ledger import find_drift
from shelfkeeper.order import service as order_service
from shelfkeeper.order.blind_index import BlindIndex
from shelfkeeper.privacy import service as privacy_service
from tests.database import migrated_database

MASTER_KEY = "tests-bench-master-key-0123456789abcdef"


def test_percentile_is_nearest_rank() -> None:
    ordered = [float(value) for value in range(1, 101)]  # 1..100

    assert percentile(ordered, 0.50) == 50.0
    assert percentile(ordered, 0.95) == 95.0
    assert percentile(ordered, 0.99) == 99.0
    assert percentile(ordered, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0
    assert percentile([], 0.5) == 0.0
    assert percentile([float(value) for value in range(1, 201)], 0.07) == 14.0


def test_summary_reports_milliseconds_of_unordered_latencies() -> None:
    assert summary([0.003, 0.001, 0.002, 0.004]) == {
        "p50": 2.0,
        "p95": 4.0,
        "p99": 4.0,
        "max": 4.0,
    }


def test_split_spreads_a_total_evenly() -> None:
    assert scale.split(10, 3) == [4, 3, 3]
    assert scale.split(2, 4) == [1, 1, 0, 0]
    assert scale.split(5, 0) == []


def test_plans_give_the_big_tenant_its_share_and_the_rest_evenly() -> None:
    found = scale.plans(
        scale.Scale(tenants=4, items=100, movements=500, orders=40, big_share=0.2),
        big_tenant="bench",
        big_location=None,
        big_exists=False,
    )

    assert [plan.tenant_id for plan in found] == [
        "bench",
        "scale-00000",
        "scale-00001",
        "scale-00002",
        "scale-00003",
    ]
    assert (found[0].items, found[0].movements, found[0].orders) == (20, 100, 8)
    assert [plan.items for plan in found[1:]] == [20, 20, 20, 20]
    assert sum(plan.movements for plan in found) == 500
    assert sum(plan.orders for plan in found) == 40
    assert not found[0].events
    assert all(plan.events for plan in found[1:])


def test_growth_and_profile_summary() -> None:
    def run(ops: float, p50: float) -> dict[str, Any]:
        return {"ops_per_second": ops, "latency_ms": {"p50": p50, "p95": p50 * 2, "p99": p50 * 3}}

    small = {"service": run(100, 10), "ceiling": run(400, 2)}
    large = {"service": run(80, 12), "ceiling": run(400, 3)}

    grown = growth(small, large)

    assert grown["service"] == {"ops_per_second": 0.8, "p50": 1.2, "p95": 1.2, "p99": 1.2}
    assert grown["ceiling"]["p50"] == 1.5

    profile = profile_summary("main;handle;json 30\nmain;handle;sql 10\nmain;idle 60\n")

    assert profile["samples"] == 100
    assert profile["inclusive"][0] == ["main", 1.0]
    assert ["handle", 0.4] in profile["inclusive"]
    assert profile["self"][0] == ["idle", 0.6]


def test_plots_draw_two_pngs(tmp_path: Path) -> None:
    def point(clients: int) -> dict[str, Any]:
        side = {"ops_per_second": 100.0 * clients, "latency_ms": {"p50": 1, "p95": 2, "p99": 3}}
        return {"concurrency": clients, "service": side, "ceiling": side, "ratio": {}}

    report = {
        "name": "t",
        "workers": 1,
        "sweep_duration_seconds": 1,
        "machine": {"cpus": 2},
        "sweep": {"read": [point(1), point(4)], "order": [point(1), point(4)]},
    }

    drawn = plots.draw(report, tmp_path)

    assert [path.name for path in drawn] == ["t-throughput.png", "t-latency.png"]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in drawn)


@pytest.fixture(scope="module")
def scratch_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of its own: the generator writes tenants the shared one must not see."""
    with migrated_database(tmp_path_factory.mktemp("bench-pg")) as dsn:
        yield dsn


async def test_generator_writes_the_counts_asked_and_a_sound_ledger(
    scratch_database: str,
) -> None:
    size = scale.Scale(tenants=3, items=30, movements=150, orders=12, big_share=0.5)

    result = await scale.generate(
        scratch_database, size, big_tenant="big", master_key=MASTER_KEY.encode()
    )

    # big: 15 items, 75 movements, 6 orders; the 3 others 5 items, 25 movements, 2 orders each
    delivered = sum(1 for number in range(1, 7) if number % 5) + 3 * 2
    canceled = 1
    assert result["rows"] == {
        "tenant": 4,
        "location": 4,
        "item": 30,
        "variant": 30,
        "sku": 30,
        "stock_level": 30,
        "stock_movement": 150,
        "sales_order": 12,
        "order_line": 36,
        "order_allocation": 36,
        "order_status_change": 4 * delivered + 2 * canceled,
        "order_counter": 4,
        "event": 6,
    }
    connection = await asyncpg.connect(scratch_database)
    try:
        assert await connection.fetchval("SELECT count(*) FROM tenant_data_key") == 4
        counters = {
            row["tenant_id"]: row["last"]
            for row in await connection.fetch("SELECT tenant_id, last FROM order_counter")
        }
        assert counters == {"big": 6, "scale-00000": 2, "scale-00001": 2, "scale-00002": 2}
        assert await connection.fetchval("SELECT count(*) FROM event WHERE tenant_id = 'big'") == 0
    finally:
        await connection.close()
    database = await Database.connect(scratch_database, role=SERVICE_ROLE, min_size=1, max_size=1)
    privacy_service.use_master_key(Settings(master_key=MASTER_KEY))
    try:
        for tenant_id in ("big", "scale-00000", "scale-00001", "scale-00002"):
            async with database.tenant_transaction(tenant_id) as db:
                assert await find_drift(db, tenant_id=tenant_id) == []
        principal = Principal(
            subject="t", tenant_id="big", roles=frozenset({Role.VIEWER}), credential="jwt"
        )
        async with database.transaction() as db:
            await bind_tenant(db, "big")
            page = await order_service.list_orders(
                db,
                principal,
                sort="created_at",
                cursor=None,
                limit=10,
                blind_index=BlindIndex(MASTER_KEY.encode()),
                customer_email="Customer1@example.com",
            )
    finally:
        await database.close()
    assert [order.number for order in page.data] == [1]
    order = page.data[0]
    assert order.customer.email == "customer1@example.com"
    assert [line.quantity for line in order.lines] == [3, 1, 2]
    assert [status.status for status in order.status_history] == [
        "pending",
        "processed",
        "shipped",
        "delivered",
    ]
