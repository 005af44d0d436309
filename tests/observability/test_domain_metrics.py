"""The domain metrics: stock movements and order transitions counted once their transaction
commits (never for a change rolled back), and the outbox backlog and low stock sampled from
the database when scraped, at most every `SAMPLE_INTERVAL_SECONDS`."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database
from shelfkeeper.event import relay
from shelfkeeper.observability import metrics
from tests.conftest import TenantWorld
from tests.inventory.factories import adjustments_url, create_item, new_location, stock
from tests.inventory.reservation_factories import expire, held, place, stocked_item
from tests.observability.conftest import app_with, client_of
from tests.observability.test_metrics import Samples, scrape, value
from tests.order.factories import moved, patch_order, placed


@pytest.fixture
def fresh_app(settings: Settings, database: Database) -> FastAPI:
    return app_with(settings, database)


def movements(samples: Samples, operation: str) -> float:
    return value(samples, "stock_movements_total", operation=operation)


def transitions(samples: Samples, source: str, target: str) -> float:
    return value(samples, "order_transitions_total", **{"from": source, "to": target})


async def test_stock_movements_are_counted_once_committed(
    fresh_app: FastAPI, world: TenantWorld
) -> None:
    async with client_of(fresh_app) as client:
        location_id = await new_location(client, world, tenant=world.a)
        item = await create_item(client, world, tenant=world.a, sku="MET-MUG")
        before = await scrape(client)
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=5,
            location_id=location_id,
        )
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="reserve",
            quantity=2,
            location_id=location_id,
        )
        # refused outright, and a batch whose first change is rolled back with its
        # savepoint when the second is refused: neither counts
        refused = await client.patch(
            f"/api/v1/{world.a}/inventory/{item['id']}/stock",
            json={"operation": "subtract", "quantity": 50, "location_id": location_id},
            headers=world.headers(world.a, "clerk"),
        )
        batch = await client.post(
            adjustments_url(world.a),
            json={
                "adjustments": [
                    {
                        "item_id": item["id"],
                        "operation": "add",
                        "quantity": 1,
                        "location_id": location_id,
                    },
                    {
                        "item_id": item["id"],
                        "operation": "subtract",
                        "quantity": 90,
                        "location_id": location_id,
                    },
                ]
            },
            headers=world.headers(world.a, "clerk"),
        )
        after = await scrape(client)

    assert (refused.status_code, batch.status_code) == (409, 409), batch.text
    assert movements(after, "add") == movements(before, "add") + 1
    assert movements(after, "reserve") == movements(before, "reserve") + 1
    assert movements(after, "subtract") == movements(before, "subtract")


async def test_order_transitions_are_counted_once_committed(
    fresh_app: FastAPI, world: TenantWorld
) -> None:
    async with client_of(fresh_app) as client:
        location_id = await new_location(client, world, tenant=world.a)
        item = await create_item(client, world, tenant=world.a, sku="MET-TEA")
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=4,
            location_id=location_id,
        )
        order = await placed(
            client,
            world,
            tenant=world.a,
            lines=[{"sku": "MET-TEA", "quantity": 2, "unit_price": "1.00"}],
        )
        before = await scrape(client)
        await moved(client, world, tenant=world.a, order_id=order["id"], status="processed")
        await moved(client, world, tenant=world.a, order_id=order["id"], status="shipped")
        invalid = await patch_order(
            client, world, tenant=world.a, order_id=order["id"], body={"status": "pending"}
        )
        after = await scrape(client)

    assert invalid.status_code == 409
    assert (
        transitions(after, "pending", "processed")
        == transitions(before, "pending", "processed") + 1
    )
    assert (
        transitions(after, "processed", "shipped")
        == transitions(before, "processed", "shipped") + 1
    )
    assert transitions(after, "shipped", "pending") == 0
    # shipping wrote a `release` and a `subtract` per level
    assert movements(after, "release") == movements(before, "release") + 1
    assert movements(after, "subtract") == movements(before, "subtract") + 1


async def test_outbox_backlog_and_low_stock_are_sampled_per_tenant(
    settings: Settings, database: Database, world: TenantWorld
) -> None:
    async with client_of(app_with(settings, database, metrics_tenant_labels=True)) as client:
        empty = await scrape(client)
        location_id = await new_location(client, world, tenant=world.a)
        item = await create_item(
            client, world, tenant=world.a, sku="MET-CUP", low_stock_threshold=5
        )
        await stock(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=3,
            location_id=location_id,
        )
        cached = await scrape(client)  # within the sample interval: the first sample
    async with client_of(app_with(settings, database, metrics_tenant_labels=True)) as client:
        waiting = await scrape(client)
        await relay.relay_tenant(database, tenant_id=world.a)
    async with client_of(app_with(settings, database, metrics_tenant_labels=True)) as client:
        relayed = await scrape(client)

    a, b = {"tenant": world.a}, {"tenant": world.b}
    assert value(empty, "domain_sample_success") == 1
    assert value(empty, "outbox_unsequenced_events", **a) == 0
    assert value(empty, "outbox_oldest_unsequenced_age_seconds", **a) == 0
    assert value(cached, "outbox_unsequenced_events", **a) == 0
    # an `InventoryUpdated` and an `InventoryLowStock`, not yet numbered by the relay
    assert value(waiting, "outbox_unsequenced_events", **a) == 2
    assert value(waiting, "outbox_oldest_unsequenced_age_seconds", **a) > 0
    assert value(waiting, "stock_levels_low", **a) == 1
    assert value(waiting, "outbox_unsequenced_events", **b) == 0
    assert value(waiting, "stock_levels_low", **b) == 0
    assert value(relayed, "outbox_unsequenced_events", **a) == 0
    assert value(relayed, "outbox_oldest_unsequenced_age_seconds", **a) == 0
    assert value(relayed, "stock_levels_low", **a) == 1


async def test_without_tenant_labels_the_gauges_are_totals(
    fresh_app: FastAPI, world: TenantWorld, database: Database
) -> None:
    async with client_of(fresh_app) as client:
        samples = await scrape(client)
        text = (await client.get("/metrics")).text

    assert value(samples, "domain_sample_success") == 1
    assert ("outbox_unsequenced_events", frozenset()) in samples
    assert ("stock_levels_low", frozenset()) in samples
    assert value(samples, "outbox_oldest_unsequenced_age_seconds") >= 0
    assert world.a not in text


async def test_sampling_is_cached_and_a_failing_sampler_never_fails_the_scrape() -> None:
    calls: list[int] = []

    async def sampler() -> list[metrics.TenantSample]:
        calls.append(1)
        if len(calls) > 1:
            raise OSError("database unreachable")
        return [metrics.TenantSample("t-one", 4, 12.5, 2)]

    registry = metrics.Metrics(tenant_labels=False, pool=lambda: None, sampler=sampler)
    await registry.domain.refresh(now=100.0)
    await registry.domain.refresh(now=105.0)
    first = registry.render().decode()
    await registry.domain.refresh(now=100.0 + metrics.SAMPLE_INTERVAL_SECONDS + 1)
    failed = registry.render().decode()

    assert len(calls) == 2
    assert "outbox_unsequenced_events 4.0" in first
    assert "stock_levels_low 2.0" in first
    assert "domain_sample_success 1.0" in first
    assert "domain_sample_success 0.0" in failed
    assert "outbox_unsequenced_events" not in failed.split("domain_sample_success 0.0")[1]


async def test_a_retried_attempt_counts_only_the_movements_that_committed(
    fresh_app: FastAPI, world: TenantWorld, owner_connection: Connection
) -> None:
    """A batch refused for want of units rolls back to its savepoint, expires the due hold
    in the way and runs again: the first attempt's movement is not counted."""
    async with client_of(fresh_app) as client:
        here = await place(client, world, tenant=world.a, code="MET-A")
        there = await place(client, world, tenant=world.a, code="MET-B")
        item_id, variant_id = await stocked_item(
            client, world, tenant=world.a, sku="MET-JAR", on_hand={here: 5}
        )
        hold = await held(
            client, world, tenant=world.a, lines=[{"variant_id": variant_id, "quantity": 5}]
        )
        await expire(owner_connection, tenant=world.a, reservation_id=hold["id"])
        before = await scrape(client)
        batch = await client.post(
            adjustments_url(world.a),
            json={
                "adjustments": [
                    {"item_id": item_id, "operation": "add", "quantity": 1, "location_id": there},
                    {
                        "item_id": item_id,
                        "operation": "subtract",
                        "quantity": 3,
                        "location_id": here,
                    },
                ]
            },
            headers=world.headers(world.a, "clerk"),
        )
        after = await scrape(client)

    assert batch.status_code == 200, batch.text
    assert movements(after, "add") == movements(before, "add") + 1
    assert movements(after, "subtract") == movements(before, "subtract") + 1
    assert movements(after, "release") == movements(before, "release") + 1
