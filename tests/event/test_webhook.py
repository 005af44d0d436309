"""Webhooks end to end: real operations through the API, the relay and the dispatcher
running, a real receiver on 127.0.0.1 (private networks allowed for these tests only)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shelfkeeper.app import create_app
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database
from shelfkeeper.event import relay, webhook_dispatcher
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from tests.conftest import TenantWorld
from tests.event.webhook_receiver import (
    Received,
    Receiver,
    create_webhook,
    deliveries_url,
    failing_first,
    webhook_url,
)
from tests.inventory.factories import create_item, stock
from tests.inventory.reservation_factories import place
from tests.order.after_sale import refunds_url, return_url, returns_url
from tests.order.factories import moved, placed

SCHEDULE = [0.1, 0.1, 0.1, 0.1]


def hook_settings(settings: Settings, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_allow_private_networks": True,
        "webhook_retry_schedule": SCHEDULE,
        "webhook_timeout_seconds": 3.0,
        "relay_poll_interval_seconds": 0.5,
        **overrides,
    }
    return settings.model_copy(update=values)


@pytest.fixture
async def hook_client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that allows private targets (the receiver is on 127.0.0.1)."""
    app = create_app(hook_settings(settings), database=database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shelfkeeper.test") as c:
        yield c


class Background:
    """The relay and dispatchers running in this process until the test ends."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, *, dispatchers: int = 1, **overrides: Any) -> None:
        settings = hook_settings(self.settings, **overrides)
        self.tasks.append(
            asyncio.create_task(relay.run(self.database, stop=self.stop, poll_interval=0.5))
        )
        for _ in range(dispatchers):
            self.tasks.append(
                asyncio.create_task(
                    webhook_dispatcher.run(
                        self.database, settings, stop=self.stop, poll_seconds=0.05
                    )
                )
            )

    async def close(self) -> None:
        self.stop.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*self.tasks)


@pytest.fixture
async def background(database: Database, settings: Settings) -> AsyncIterator[Background]:
    running = Background(database, settings)
    yield running
    await running.close()


async def deliveries(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, webhook_id: str
) -> list[dict[str, Any]]:
    response = await client.get(
        deliveries_url(tenant, webhook_id), params={"limit": 200}, headers=world.headers(tenant)
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def settled(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    webhook_id: str,
    count: int,
    seconds: float = 20,
) -> list[dict[str, Any]]:
    """The webhook's deliveries once `count` of them are no longer pending."""
    async with asyncio.timeout(seconds):
        while True:
            found = await deliveries(client, world, tenant=tenant, webhook_id=webhook_id)
            if sum(delivery["status"] != "pending" for delivery in found) >= count:
                return found
            await asyncio.sleep(0.05)


async def record(database: Database, *, tenant: str, subject: str, marker: str) -> None:
    async with database.tenant_transaction(tenant) as db:
        await event_service.record(
            db,
            tenant_id=tenant,
            type=EventType.INVENTORY_UPDATED,
            subject=subject,
            data={"marker": marker},
        )


async def unsequenced(database: Database, *, tenant: str) -> int:
    async with database.tenant_transaction(tenant) as db:
        count: int = await db.fetchval(
            "SELECT count(*) FROM event WHERE tenant_id = $1 AND sequence IS NULL", tenant
        )
    return count


def delivered_count(metrics_text: str) -> float:
    match = re.search(
        r'^webhook_deliveries_total\{outcome="delivered"\} (\S+)$', metrics_text, re.M
    )
    return float(match.group(1)) if match else 0.0


async def run_every_operation(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str
) -> None:
    """Operations through the API that emit every event type of the inventory and orders."""
    north = await place(client, world, tenant=tenant, code="N")
    item = await create_item(client, world, tenant=tenant, sku="TOWEL", low_stock_threshold=5)
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="add",
        quantity=20,
        location_id=north,
    )
    await stock(  # 20 → 4: below the threshold
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="subtract",
        quantity=16,
        location_id=north,
    )
    line = {"sku": "TOWEL", "quantity": 2, "unit_price": "5.00"}
    order = await placed(client, world, tenant=tenant, lines=[line])
    paid = await client.post(
        f"/api/v1/{tenant}/orders/{order['id']}/payments",
        json={"amount": "10.00", "provider": "manual"},
        headers=world.headers(tenant),
    )
    assert paid.status_code == 201, paid.text
    for status in ("processed", "shipped", "delivered"):
        await moved(client, world, tenant=tenant, order_id=order["id"], status=status)
    for outcome in ("received", "rejected"):
        requested = await client.post(
            returns_url(tenant, order["id"]),
            json={"lines": [{"line_id": order["lines"][0]["id"], "quantity": 1, "restock": True}]},
            headers=world.headers(tenant),
        )
        assert requested.status_code == 201, requested.text
        decided = await client.patch(
            return_url(tenant, order["id"], requested.json()["id"]),
            json={"status": outcome},
            headers=world.headers(tenant),
        )
        assert decided.status_code == 200, decided.text
    refunded = await client.post(
        refunds_url(tenant, order["id"]), json={"amount": "1.00"}, headers=world.headers(tenant)
    )
    assert refunded.status_code == 201, refunded.text
    cancelled = await placed(client, world, tenant=tenant, lines=[line])
    await moved(client, world, tenant=tenant, order_id=cancelled["id"], status="canceled")


async def test_every_event_type_reaches_the_receiver_signed(
    hook_client: httpx.AsyncClient, world: TenantWorld, database: Database, background: Background
) -> None:
    expected = {event.value for event in EventType} - {EventType.WEBHOOK_ENDPOINT_DISABLED.value}
    before = delivered_count((await hook_client.get("/metrics")).text)
    async with Receiver() as receiver:
        webhook = await create_webhook(hook_client, world, tenant=world.a, url=receiver.url())
        background.start()
        await run_every_operation(hook_client, world, tenant=world.a)
        async with asyncio.timeout(30):
            while {request.event["type"] for request in receiver.requests} != expected:
                await receiver.wait_for(len(receiver.requests) + 1)

        # Every event of the tenant, once all are numbered (the operations are over).
        async with asyncio.timeout(30):
            while True:
                polled = await hook_client.get(
                    f"/api/v1/{world.a}/events",
                    params={"limit": 200},
                    headers=world.headers(world.a),
                )
                by_id = {event["id"]: event for event in polled.json()["data"]}
                if (
                    len(receiver.requests) >= len(by_id)
                    and await unsequenced(database, tenant=world.a) == 0
                ):
                    break
                await asyncio.sleep(0.05)

    assert sorted(request.headers["webhook-id"] for request in receiver.requests) == sorted(by_id)
    for request in receiver.requests:
        event = request.verified(webhook["secret"])
        assert request.method == "POST"
        assert request.path == "/hook"
        assert request.headers["webhook-id"] == event["id"]
        assert request.headers["content-type"] == "application/json"
        assert event == by_id[event["id"]]  # the envelope GET /events renders
        assert event["tenantid"] == world.a
    found = await settled(
        hook_client, world, tenant=world.a, webhook_id=webhook["id"], count=len(by_id)
    )
    assert {delivery["status"] for delivery in found} == {"succeeded"}
    assert all(
        [attempt["status_code"] for attempt in delivery["attempts"]] == [204] for delivery in found
    )
    after = delivered_count((await hook_client.get("/metrics")).text)
    assert after - before >= len(by_id)


async def test_a_failing_receiver_gets_the_delivery_on_a_retry_and_the_log_shows_it(
    hook_client: httpx.AsyncClient, world: TenantWorld, database: Database, background: Background
) -> None:
    async with Receiver(failing_first(2)) as receiver:
        webhook = await create_webhook(hook_client, world, tenant=world.a, url=receiver.url())
        background.start()
        await record(database, tenant=world.a, subject="inventory/1", marker="retry")
        requests = await receiver.wait_for(3)

    assert len({request.headers["webhook-id"] for request in requests}) == 1
    assert all(
        request.verified(webhook["secret"])["data"] == {"marker": "retry"} for request in requests
    )
    [delivery] = await settled(
        hook_client, world, tenant=world.a, webhook_id=webhook["id"], count=1
    )
    assert delivery["status"] == "succeeded"
    assert delivery["attempt_count"] == 3
    assert delivery["event_type"] == "InventoryUpdated"
    assert delivery["subject"] == "inventory/1"
    assert delivery["next_attempt_at"] is None
    assert delivery["delivered_at"] is not None
    log = [(a["attempt"], a["status_code"], a["error"]) for a in delivery["attempts"]]
    assert log == [(1, 503, "HTTP 503"), (2, 503, "HTTP 503"), (3, 200, None)]
    assert all(attempt["latency_seconds"] >= 0 for attempt in delivery["attempts"])


async def test_redelivery_sends_the_same_message_again(
    hook_client: httpx.AsyncClient, world: TenantWorld, database: Database, background: Background
) -> None:
    async with Receiver() as receiver:
        webhook = await create_webhook(hook_client, world, tenant=world.a, url=receiver.url())
        background.start()
        await record(database, tenant=world.a, subject="inventory/1", marker="again")
        [first] = await receiver.wait_for(1)
        [delivery] = await settled(
            hook_client, world, tenant=world.a, webhook_id=webhook["id"], count=1
        )
        redelivered = await hook_client.post(
            f"{deliveries_url(world.a, webhook['id'])}/{delivery['id']}/redeliver",
            headers=world.headers(world.a),
        )
        assert redelivered.status_code == 202, redelivered.text
        assert redelivered.json()["status"] == "pending"
        _, second = await receiver.wait_for(2)

    assert second.headers["webhook-id"] == first.headers["webhook-id"]
    assert second.verified(webhook["secret"]) == first.verified(webhook["secret"])
    async with asyncio.timeout(10):
        while True:
            read = await hook_client.get(
                f"{deliveries_url(world.a, webhook['id'])}/{delivery['id']}",
                headers=world.headers(world.a),
            )
            if read.json()["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
    assert [attempt["attempt"] for attempt in read.json()["attempts"]] == [1, 2]


async def test_a_tenant_s_endpoint_never_sees_another_tenant_s_events(
    hook_client: httpx.AsyncClient, world: TenantWorld, database: Database, background: Background
) -> None:
    async with Receiver() as for_a, Receiver() as for_b:
        webhook_a = await create_webhook(hook_client, world, tenant=world.a, url=for_a.url())
        webhook_b = await create_webhook(hook_client, world, tenant=world.b, url=for_b.url())
        background.start()
        for index in range(3):
            await record(database, tenant=world.a, subject=f"a/{index}", marker="a")
        await record(database, tenant=world.b, subject="b/0", marker="b")
        await for_a.wait_for(3)
        await for_b.wait_for(1)
        await asyncio.sleep(0.3)  # time for any stray delivery to arrive

    assert [r.verified(webhook_a["secret"])["tenantid"] for r in for_a.requests] == [world.a] * 3
    assert [r.verified(webhook_b["secret"])["data"] for r in for_b.requests] == [{"marker": "b"}]
    assert (
        len(await deliveries(hook_client, world, tenant=world.b, webhook_id=webhook_b["id"])) == 1
    )


async def test_a_failing_delivery_holds_back_its_subject_but_not_others(
    hook_client: httpx.AsyncClient, world: TenantWorld, database: Database, background: Background
) -> None:
    failures = 3

    async def respond(request: Received, _: int) -> int:
        nonlocal failures
        if request.event["data"]["marker"] == "x1" and failures > 0:
            failures -= 1
            return 500
        return 204

    async with Receiver(respond) as receiver:
        webhook = await create_webhook(hook_client, world, tenant=world.a, url=receiver.url())
        for subject, marker in (("orders/x", "x1"), ("orders/x", "x2"), ("orders/y", "y1")):
            await record(database, tenant=world.a, subject=subject, marker=marker)
        background.start()
        await receiver.wait_for(6)  # x1 four times, y1, x2

    markers = [
        request.verified(webhook["secret"])["data"]["marker"] for request in receiver.requests
    ]
    assert markers.count("x1") == 4
    assert markers.count("x2") == 1
    assert markers.count("y1") == 1
    last_x1 = len(markers) - 1 - markers[::-1].index("x1")
    assert markers.index("x2") > last_x1  # x2 waited for x1 to be acknowledged
    assert markers.index("y1") < last_x1  # y1 was not held back by x1's failures


async def test_an_endpoint_failing_deliveries_in_a_row_is_disabled_and_the_tenant_told(
    hook_client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    background: Background,
    owner_connection: Connection,
) -> None:
    async def broken(_: Received, __: int) -> int:
        return 500

    async with Receiver(broken) as failing, Receiver() as watcher:
        webhook = await create_webhook(hook_client, world, tenant=world.a, url=failing.url())
        watching = await create_webhook(
            hook_client,
            world,
            tenant=world.a,
            url=watcher.url(),
            events=["WebhookEndpointDisabled"],
        )
        background.start(webhook_retry_schedule=[0.05], webhook_disable_after_failures=2)
        await record(database, tenant=world.a, subject="s/1", marker="1")
        await record(database, tenant=world.a, subject="s/2", marker="2")
        [notice] = await watcher.wait_for(1)

        event = notice.verified(watching["secret"])
        assert event["type"] == "WebhookEndpointDisabled"
        assert event["subject"] == f"webhooks/{webhook['id']}"
        assert event["data"]["webhook_id"] == webhook["id"]
        assert event["data"]["consecutive_failures"] == 2
        read = await hook_client.get(
            webhook_url(world.a, webhook["id"]), headers=world.headers(world.a)
        )
        assert read.json()["enabled"] is False
        assert read.json()["consecutive_failures"] == 2
        assert read.json()["disabled_at"] is not None
        assert len(failing.requests) == 4  # two deliveries, two attempts each
        found = await deliveries(hook_client, world, tenant=world.a, webhook_id=webhook["id"])
        assert sorted(delivery["status"] for delivery in found) == ["failed", "failed"]

        # While disabled, new events make no deliveries for it.
        await record(database, tenant=world.a, subject="s/3", marker="3")
        async with asyncio.timeout(10):
            while True:
                unsequenced = await owner_connection.fetchval(
                    "SELECT count(*) FROM event WHERE tenant_id = $1 AND sequence IS NULL", world.a
                )
                if not unsequenced:
                    break
                await asyncio.sleep(0.05)
        assert (
            len(await deliveries(hook_client, world, tenant=world.a, webhook_id=webhook["id"])) == 2
        )

        enabled = await hook_client.patch(
            webhook_url(world.a, webhook["id"]),
            json={"enabled": True},
            headers=world.headers(world.a),
        )
        assert enabled.status_code == 200, enabled.text
        assert enabled.json()["enabled"] is True
        assert enabled.json()["consecutive_failures"] == 0
        assert enabled.json()["disabled_at"] is None


async def test_several_dispatchers_deliver_each_event_once(
    hook_client: httpx.AsyncClient, world: TenantWorld, database: Database, background: Background
) -> None:
    async with Receiver() as receiver:
        webhook = await create_webhook(hook_client, world, tenant=world.a, url=receiver.url())
        for index in range(30):
            await record(database, tenant=world.a, subject=f"item/{index % 7}", marker=str(index))
        background.start(dispatchers=3)
        await receiver.wait_for(30)
        await asyncio.sleep(0.5)  # time for a duplicate to show up

    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert len(ids) == 30
    assert len(set(ids)) == 30
    found = await settled(hook_client, world, tenant=world.a, webhook_id=webhook["id"], count=30)
    assert all(delivery["attempt_count"] == 1 for delivery in found)
    for subject in range(7):  # each subject's events arrived in sequence order
        arrived = [
            request.event["sequence"]
            for request in receiver.requests
            if request.event["subject"] == f"item/{subject}"
        ]
        assert arrived == sorted(arrived)


async def test_the_guard_refuses_a_private_target_again_at_delivery_time(
    hook_client: httpx.AsyncClient, world: TenantWorld, database: Database, background: Background
) -> None:
    async with Receiver() as receiver:
        # Created while private networks were allowed; the dispatcher no longer allows them.
        webhook = await create_webhook(hook_client, world, tenant=world.a, url=receiver.url())
        background.start(webhook_allow_private_networks=False, webhook_retry_schedule=[0.05])
        await record(database, tenant=world.a, subject="inventory/1", marker="guarded")
        [delivery] = await settled(
            hook_client, world, tenant=world.a, webhook_id=webhook["id"], count=1
        )

    assert receiver.connections == 0  # no connection was ever opened to it
    assert delivery["status"] == "failed"
    assert [(a["status_code"], a["error"]) for a in delivery["attempts"]] == [
        (None, "refused: 127.0.0.1 is not a public address.")
    ] * 2
