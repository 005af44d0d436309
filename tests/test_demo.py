"""`shelfkeeper demo`: a demo tenant with locations, items, stock and orders, all or nothing."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from typing import Any

import httpx

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database
from shelfkeeper.inventory.ledger import find_drift
from tests.conftest import JWT_SECRET, TenantWorld
from tests.test_cli import cli_environment, run_cli


def demo_environment(settings: Settings, database_url: str) -> dict[str, str]:
    # The test app's data directory: the same generated master key (blind index, and any
    # key derived from it) as the app that reads the demo data back.
    return cli_environment(
        settings.data_dir, DATABASE_URL=database_url, SHELFKEEPER_JWT_SECRET=JWT_SECRET
    )


async def listed(client: httpx.AsyncClient, world: TenantWorld, url: str, tenant: str) -> Any:
    response = await client.get(url, params={"limit": 200}, headers=world.headers(tenant))
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def row_counts(owner: Connection, *, tenant: str) -> dict[str, int]:
    tables = ("location", "item", "variant", "stock_level", "stock_movement", "sales_order")
    counts = {}
    for table in tables:
        counts[table] = await owner.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant
        )
    counts["event"] = await owner.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1", tenant
    )
    return counts


async def test_demo_loads_a_tenant_with_locations_items_stock_and_orders(
    client: httpx.AsyncClient,
    world: TenantWorld,
    settings: Settings,
    database_url: str,
    database: Database,
    owner_connection: Connection,
) -> None:
    tenant = f"demo-{uuid.uuid4().hex[:10]}"

    result = run_cli("demo", "--tenant", tenant, env=demo_environment(settings, database_url))

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "tenant": tenant,
        "locations": 3,
        "items": 6,
        "units_received": 246,
        "orders": {"pending": 1, "processed": 1, "shipped": 1, "delivered": 2, "canceled": 1},
    }
    assert f"shelfkeeper token --tenant {tenant} --role admin" in result.stderr

    locations = await listed(client, world, f"/api/v1/{tenant}/locations", tenant)
    assert sorted((row["code"], row["kind"]) for row in locations) == [
        ("AMS", "warehouse"),
        ("RTM", "warehouse"),
        ("UTR", "store"),
    ]
    codes = {row["id"]: row["code"] for row in locations}
    items = await listed(client, world, f"/api/v1/{tenant}/inventory", tenant)
    assert sorted(item["sku"] for item in items) == [
        "CANDLE",
        "LAMP",
        "MUG",
        "POT",
        "SHEET",
        "TOWEL",
    ]
    levels = {
        (variant_sku, codes[level["location_id"]]): (level["on_hand"], level["reserved"])
        for item in items
        for variant_sku, variant_id in ((v["sku"], v["id"]) for v in item["variants"])
        for level in item["stock"]
        if level["variant_id"] == variant_id
    }
    # towels W-L: 2 reserved by the pending order at the store (priority 5, 6 on hand)
    assert levels[("TOWEL-W-L", "UTR")] == (6, 2)
    # candles: 5 reserved by the processed order, of 9
    assert levels[("CANDLE", "AMS")] == (9, 5)
    # one king sheet shipped
    assert levels[("SHEET-KING", "RTM")] == (4, 0)
    # the canceled order's pots were released
    assert levels[("POT", "RTM")] == (25, 0)
    # two W-M towels delivered from the store, one returned and restocked there
    assert levels[("TOWEL-W-M", "UTR")] == (3, 0)

    orders = await listed(client, world, f"/api/v1/{tenant}/orders", tenant)
    assert Counter(order["status"] for order in orders) == {
        "pending": 1,
        "processed": 1,
        "shipped": 1,
        "delivered": 2,
        "canceled": 1,
    }
    assert sorted(order["number"] for order in orders) == [1, 2, 3, 4, 5, 6]
    assert Counter(order["payment_status"] for order in orders) == {
        "unpaid": 2,
        "paid": 3,
        "partially_refunded": 1,
    }

    async with database.tenant_transaction(tenant) as db:
        assert await find_drift(db, tenant_id=tenant) == []
    types = {
        row["type"]
        for row in await owner_connection.fetch(
            "SELECT DISTINCT type FROM event WHERE tenant_id = $1", tenant
        )
    }
    assert types == {
        "InventoryUpdated",
        "InventoryLowStock",
        "OrderPlaced",
        "OrderUpdated",
        "OrderProcessed",
        "OrderShipped",
        "OrderDelivered",
        "OrderCancelled",
        "ReturnRequested",
        "ReturnReceived",
        "RefundIssued",
    }


async def test_demo_refuses_an_existing_tenant_and_leaves_it_unchanged(
    settings: Settings, database_url: str, owner_connection: Connection
) -> None:
    tenant = f"demo-{uuid.uuid4().hex[:10]}"
    env = demo_environment(settings, database_url)
    first = run_cli("demo", "--tenant", tenant, env=env)
    assert first.returncode == 0, first.stderr
    before = await row_counts(owner_connection, tenant=tenant)

    second = run_cli("demo", "--tenant", tenant, "--name", "Again", env=env)

    assert second.returncode == 1
    assert second.stdout == ""
    assert "Traceback" not in second.stderr
    problem = json.loads(second.stderr.strip().splitlines()[-1])
    assert problem["type"].endswith("/problems/tenant-exists")
    assert await row_counts(owner_connection, tenant=tenant) == before
    assert before["sales_order"] == 6
    assert await owner_connection.fetchval("SELECT name FROM tenant WHERE id = $1", tenant) == (
        "Demo Home Goods"
    )


async def test_demo_refuses_an_invalid_tenant_id_before_touching_the_database(
    settings: Settings, database_url: str, owner_connection: Connection
) -> None:
    result = run_cli("demo", "--tenant", "Not_Valid", env=demo_environment(settings, database_url))

    assert result.returncode == 2
    assert "Invalid value for '--tenant'" in result.stderr
    assert "Traceback" not in result.stderr
    assert (
        await owner_connection.fetchval("SELECT count(*) FROM tenant WHERE id = 'Not_Valid'") == 0
    )
