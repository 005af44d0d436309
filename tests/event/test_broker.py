"""Publishing to NATS JetStream: every sequenced event, on `<prefix>.<tenant>.<type>`, with its
id as `Nats-Msg-Id`, in sequence order, exactly once in the stream.

Against the real NATS at 127.0.0.1:4222. Each test publishes into a stream and subject prefix
of its own (deleted afterwards), so tests never see each other's messages; without NATS the
tests are skipped, except under CI=true, where they fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database
from shelfkeeper.event import broker
from tests.conftest import JWT_SECRET, TenantWorld, create_tenant
from tests.event.factories import events_url, record
from tests.event.test_relay import relay_until_done
from tests.inventory.factories import adjust, create_item, new_location
from tests.order.factories import moved, placed
from tests.test_cli import cli_environment, start_cli

NATS_URL = "nats://127.0.0.1:4222"


@dataclass(frozen=True)
class Target:
    """A stream and subject prefix of this test's own."""

    client: NATS
    jetstream: JetStreamContext
    stream: str
    prefix: str

    def publisher(self) -> broker.Publisher:
        return broker.Publisher(self.jetstream, stream=self.stream, subject_prefix=self.prefix)


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    try:
        client = await nats.connect(NATS_URL, connect_timeout=2, allow_reconnect=False)
    except Exception as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"NATS at {NATS_URL} is unreachable under CI: {error}")
        pytest.skip(f"NATS at {NATS_URL} is unreachable: {error}")
    token = uuid.uuid4().hex[:12]
    found = Target(client, client.jetstream(), stream=f"SKTEST_{token}", prefix=f"sktest-{token}")
    try:
        yield found
    finally:
        try:
            await found.jetstream.delete_stream(found.stream)
        except nats.js.errors.NotFoundError:
            pass
        await client.close()


async def stored(target: Target) -> list[dict[str, Any]]:
    """Every message in the stream, in stream order: subject, headers, envelope."""
    info = await target.jetstream.stream_info(target.stream)
    messages = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await target.jetstream.get_msg(target.stream, seq)
        assert message.data is not None
        messages.append(
            {
                "subject": message.subject,
                "headers": message.headers or {},
                "event": json.loads(message.data),
            }
        )
    return messages


async def tenant_events(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str
) -> list[dict[str, Any]]:
    """The tenant's sequenced events as `GET /events` shows them."""
    response = await client.get(
        events_url(tenant), params={"limit": 200}, headers=world.headers(tenant, "viewer")
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


async def some_business(client: httpx.AsyncClient, world: TenantWorld, *, tenant: str) -> None:
    """Real operations: stock received, an order placed, processed and shipped."""
    location = await new_location(client, world, tenant=tenant)
    item = await create_item(client, world, tenant=tenant, sku="TOWEL")
    received = await adjust(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="add",
        quantity=8,
        location_id=location,
        reason="received",
    )
    assert received.status_code == 200, received.text
    order = await placed(
        client,
        world,
        tenant=tenant,
        lines=[{"sku": "TOWEL", "quantity": 2, "unit_price": "9.50"}],
    )
    for status in ("processed", "shipped"):
        await moved(client, world, tenant=tenant, order_id=order["id"], status=status)


async def cursor_of(database: Database, *, tenant: str, stream: str) -> int | None:
    async with database.tenant_transaction(tenant) as db:
        return await broker.get_cursor(db, tenant_id=tenant, stream=stream)


async def wait_for_cursor(database: Database, *, tenant: str, stream: str, value: int) -> None:
    """Until the tenant's cursor is `value`. Generous: a loop's first pass publishes every
    tenant of the test database, in a full run thousands of them."""
    async with asyncio.timeout(120):
        while True:
            if await cursor_of(database, tenant=tenant, stream=stream) == value:
                return
            await asyncio.sleep(0.02)


async def test_events_of_real_operations_arrive_in_sequence_order_in_a_created_stream(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, target: Target
) -> None:
    with pytest.raises(nats.js.errors.NotFoundError):
        await target.jetstream.stream_info(target.stream)
    await some_business(client, world, tenant=world.a)
    await relay_until_done(database, tenant=world.a)
    events = await tenant_events(client, world, tenant=world.a)
    publisher = target.publisher()

    await publisher.ensure_stream()
    assert await publisher.publish_tenant(database, tenant_id=world.a, limit=3)

    info = await target.jetstream.stream_info(target.stream)
    assert info.config.subjects == [f"{target.prefix}.>"]
    assert info.config.duplicate_window == broker.DUPLICATE_WINDOW_SECONDS
    messages = await stored(target)
    # location and item create no events; stock added, order placed (a reserve),
    # processed, shipped (a release and a subtract)
    assert [event["type"] for event in events] == [
        "InventoryUpdated",
        "InventoryUpdated",
        "OrderPlaced",
        "OrderProcessed",
        "InventoryUpdated",
        "InventoryUpdated",
        "OrderShipped",
    ]
    assert [message["event"] for message in messages] == events
    assert [message["event"]["sequence"] for message in messages] == list(range(1, 8))
    assert [message["subject"] for message in messages] == [
        f"{target.prefix}.{world.a}.{event['type']}" for event in events
    ]
    assert [message["headers"]["Nats-Msg-Id"] for message in messages] == [
        event["id"] for event in events
    ]
    assert {message["headers"]["Content-Type"] for message in messages} == {
        "application/cloudevents+json"
    }
    assert await cursor_of(database, tenant=world.a, stream=target.stream) == 7


async def test_a_republish_is_dropped_by_jetstream_as_a_duplicate(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, target: Target
) -> None:
    for number in range(5):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    await relay_until_done(database, tenant=world.a)
    publisher = target.publisher()
    await publisher.ensure_stream()
    assert await publisher.publish_tenant(database, tenant_id=world.a)
    first = await stored(target)

    # an operator rewinds the cursor: everything is published again
    async with database.tenant_transaction(world.a) as db:
        await broker.put_cursor(db, tenant_id=world.a, stream=target.stream, sequence=0)
    async with database.tenant_transaction(world.a) as db:
        batch = await publisher.publish_batch(db, tenant_id=world.a, limit=100)

    assert batch == broker.Batch(read=5, published=5, duplicates=5, error=None)
    assert await stored(target) == first
    assert len(first) == 5
    assert await cursor_of(database, tenant=world.a, stream=target.stream) == 5


async def test_a_crash_before_the_cursor_moves_republishes_without_duplicates(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, target: Target
) -> None:
    for number in range(4):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    await relay_until_done(database, tenant=world.a)
    publisher = target.publisher()
    await publisher.ensure_stream()

    class Crash(Exception):
        pass

    async def publish_then_crash() -> None:
        async with database.tenant_transaction(world.a) as db:
            batch = await publisher.publish_batch(db, tenant_id=world.a, limit=100)
            assert batch is not None
            assert batch.published == 4
            raise Crash  # after the acknowledgements, before the commit

    async with database.tenant_transaction(world.a) as db:
        await broker.put_cursor(db, tenant_id=world.a, stream=target.stream, sequence=0)
    with pytest.raises(Crash):
        await publish_then_crash()
    assert await cursor_of(database, tenant=world.a, stream=target.stream) == 0
    assert len(await stored(target)) == 4

    assert await publisher.publish_tenant(database, tenant_id=world.a)

    messages = await stored(target)
    assert [message["event"]["sequence"] for message in messages] == [1, 2, 3, 4]
    assert await cursor_of(database, tenant=world.a, stream=target.stream) == 4


async def test_subjects_and_cursors_are_per_tenant(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, target: Target
) -> None:
    for tenant in (world.a, world.b, world.a):
        await record(database, tenant=tenant, subject=f"inventory/{tenant}")
    for tenant in (world.a, world.b):
        await relay_until_done(database, tenant=tenant)
    publisher = target.publisher()
    await publisher.ensure_stream()

    assert await publisher.publish_tenant(database, tenant_id=world.a)
    only_a = await stored(target)
    assert await cursor_of(database, tenant=world.b, stream=target.stream) is None
    assert await publisher.publish_tenant(database, tenant_id=world.b)
    both = await stored(target)

    assert [message["subject"] for message in only_a] == [
        f"{target.prefix}.{world.a}.InventoryUpdated"
    ] * 2
    assert [message["event"]["tenantid"] for message in only_a] == [world.a] * 2
    assert [(m["subject"], m["event"]["tenantid"], m["event"]["sequence"]) for m in both[2:]] == [
        (f"{target.prefix}.{world.b}.InventoryUpdated", world.b, 1)
    ]
    a_subjects = await target.jetstream.stream_info(
        target.stream, subjects_filter=f"{target.prefix}.{world.a}.>"
    )
    assert a_subjects.state.messages == 3
    assert a_subjects.state.subjects == {f"{target.prefix}.{world.a}.InventoryUpdated": 2}
    assert await cursor_of(database, tenant=world.a, stream=target.stream) == 2
    assert await cursor_of(database, tenant=world.b, stream=target.stream) == 1


async def test_a_poll_visits_only_the_tenants_with_unpublished_sequenced_events(
    world: TenantWorld, database: Database, target: Target
) -> None:
    quiet = await create_tenant(database)
    for tenant in (world.a, world.b):
        await record(database, tenant=tenant, subject=f"inventory/{tenant}")
        await relay_until_done(database, tenant=tenant)
    publisher = target.publisher()
    await publisher.ensure_stream()

    async def polled() -> set[str]:
        found = await broker.unpublished_tenant_ids(database, consumer=publisher.consumer)
        return {tenant for tenant in found if tenant in (world.a, world.b, quiet)}

    before = await polled()
    assert await publisher.publish_tenant(database, tenant_id=world.a)
    after_a = await polled()
    await record(database, tenant=world.a, subject=f"inventory/{world.a}")  # not sequenced yet
    unsequenced = await polled()
    await relay_until_done(database, tenant=world.a)
    sequenced = await polled()

    assert before == {world.a, world.b}  # never the tenant without events
    assert after_a == {world.b}
    assert unsequenced == {world.b}  # the relay's work first, then the publisher's
    assert sequenced == {world.a, world.b}


async def test_publishers_at_once_take_turns_and_store_each_event_once_in_order(
    world: TenantWorld, database: Database, target: Target
) -> None:
    for number in range(40):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    await relay_until_done(database, tenant=world.a)
    await target.publisher().ensure_stream()
    others = [await nats.connect(NATS_URL, allow_reconnect=False) for _ in range(3)]
    publishers = [
        broker.Publisher(other.jetstream(), stream=target.stream, subject_prefix=target.prefix)
        for other in others
    ]
    skipped = 0

    async def publish(publisher: broker.Publisher) -> None:
        nonlocal skipped
        while not await publisher.publish_tenant(database, tenant_id=world.a, limit=3):
            skipped += 1
            await asyncio.sleep(0.005)

    try:
        await asyncio.gather(*(publish(publisher) for publisher in publishers))
    finally:
        for other in others:
            await other.close()

    messages = await stored(target)
    assert [message["event"]["sequence"] for message in messages] == list(range(1, 41))
    assert await cursor_of(database, tenant=world.a, stream=target.stream) == 40
    assert skipped >= 1  # they met at the cursor and one stood aside


async def test_a_long_backlog_is_published_a_few_batches_per_visit(
    world: TenantWorld, database: Database, target: Target
) -> None:
    for number in range(5):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    await relay_until_done(database, tenant=world.a)
    publisher = target.publisher()
    await publisher.ensure_stream()

    first = await publisher.publish_tenant(database, tenant_id=world.a, limit=2, batches=3)
    after_first = await cursor_of(database, tenant=world.a, stream=target.stream)
    second = await publisher.publish_tenant(database, tenant_id=world.a, limit=2, batches=3)

    # the first visit's batches: creating the cursor, then 2 and 2 events; not done
    assert (first, after_first) == (False, 4)
    assert second is True
    assert await cursor_of(database, tenant=world.a, stream=target.stream) == 5
    assert len(await stored(target)) == 5


async def test_a_held_cursor_is_skipped_not_waited_for(
    world: TenantWorld, database: Database, target: Target
) -> None:
    await record(database, tenant=world.a)
    await relay_until_done(database, tenant=world.a)
    publisher = target.publisher()
    await publisher.ensure_stream()

    assert await publisher.publish_tenant(database, tenant_id=world.a)  # creates the cursor
    await record(database, tenant=world.a)
    await relay_until_done(database, tenant=world.a)

    async with database.tenant_transaction(world.a) as holder:
        async with asyncio.timeout(5):
            assert await publisher.publish_batch(holder, tenant_id=world.a, limit=1) is not None
            assert await publisher.publish_tenant(database, tenant_id=world.a) is False
    assert len(await stored(target)) == 2


async def test_the_running_publisher_is_woken_by_the_relay(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    settings: Settings,
    target: Target,
) -> None:
    for number in range(7):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    await relay_until_done(database, tenant=world.a)
    configured = settings.model_copy(
        update={
            "nats_url": NATS_URL,
            "nats_stream": target.stream,
            "relay_poll_interval_seconds": 3600.0,
        }
    )
    stop = asyncio.Event()
    running = asyncio.create_task(
        broker.run(database, configured, stop=stop, subject_prefix=target.prefix)
    )
    try:
        # its first pass visits every tenant, this one's seven events included
        await wait_for_cursor(database, tenant=world.a, stream=target.stream, value=7)
        # then only the relay's wake-up (the next poll is an hour away) brings a new one
        await record(database, tenant=world.a, subject="after-the-first-pass")
        await relay_until_done(database, tenant=world.a)
        await wait_for_cursor(database, tenant=world.a, stream=target.stream, value=8)
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)

    assert await cursor_of(database, tenant=world.a, stream=target.stream) == 8
    a_messages = [m for m in await stored(target) if m["event"]["tenantid"] == world.a]
    assert [m["event"]["sequence"] for m in a_messages] == list(range(1, 9))
    assert a_messages[-1]["event"]["subject"] == "after-the-first-pass"


async def test_an_unreachable_nats_is_retried_and_the_loop_stops_cleanly(
    world: TenantWorld,
    database: Database,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await record(database, tenant=world.a)
    await relay_until_done(database, tenant=world.a)
    # port 1 on loopback: connection refused at once, nothing leaves the machine
    configured = settings.model_copy(
        update={"nats_url": "nats://127.0.0.1:1", "nats_stream": "SKTEST_UNREACHABLE"}
    )
    stop = asyncio.Event()
    running = asyncio.create_task(broker.run(database, configured, stop=stop))
    await asyncio.sleep(1.5)
    still_running = not running.done()
    stop.set()
    await asyncio.wait_for(running, 10)

    assert still_running
    assert running.exception() is None
    assert any("broker: NATS" in record.getMessage() for record in caplog.records)
    assert await cursor_of(database, tenant=world.a, stream="SKTEST_UNREACHABLE") is None


async def test_a_tenant_id_that_is_not_one_subject_token_is_refused(
    database: Database, target: Target
) -> None:
    with pytest.raises(ValueError, match="subject token"):
        await target.publisher().publish_tenant(database, tenant_id="a.b")


async def test_the_cursor_table_is_the_tenants_own(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    async with database.tenant_transaction(world.a) as db:
        await broker.put_cursor(db, tenant_id=world.a, stream="S", sequence=3)
    async with database.tenant_transaction(world.b) as db:
        assert await broker.get_cursor(db, tenant_id=world.a, stream="S") is None

    rows = await owner_connection.fetch(
        "SELECT tenant_id, consumer, sequence FROM event_cursor WHERE tenant_id = ANY($1)",
        [world.a, world.b],
    )
    assert [tuple(row) for row in rows] == [(world.a, "nats:S", 3)]


def test_subjects_name_tenant_and_type() -> None:
    assert broker.subject_of("acme", "OrderPlaced") == "shelfkeeper.acme.OrderPlaced"
    assert broker.consumer_of("SHELFKEEPER") == "nats:SHELFKEEPER"


class Outage:
    """A TCP proxy on loopback in front of the real NATS, which can go down and come back
    on the same port: an outage as the publisher sees it."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for pipe in self.pipes:
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)
        await self.server.wait_closed()
        self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", 4222)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            finally:
                sink.close()

        for source, sink in ((reader, upstream_writer), (upstream_reader, writer)):
            task = asyncio.create_task(pipe(source, sink))
            self.pipes.add(task)
            task.add_done_callback(self.pipes.discard)


async def test_the_publisher_survives_a_nats_outage_and_catches_up(
    world: TenantWorld, database: Database, settings: Settings, target: Target
) -> None:
    outage = Outage()
    await outage.up()
    configured = settings.model_copy(
        update={
            "nats_url": outage.url,
            "nats_stream": target.stream,
            "relay_poll_interval_seconds": 0.2,
        }
    )
    stop = asyncio.Event()
    running = asyncio.create_task(
        broker.run(database, configured, stop=stop, subject_prefix=target.prefix)
    )
    try:
        await record(database, tenant=world.a, subject="before")
        await relay_until_done(database, tenant=world.a)
        await wait_for_cursor(database, tenant=world.a, stream=target.stream, value=1)

        await outage.down()
        await record(database, tenant=world.a, subject="during")
        await relay_until_done(database, tenant=world.a)
        await asyncio.sleep(1.0)
        cursor_during = await cursor_of(database, tenant=world.a, stream=target.stream)
        alive_during = not running.done()

        await outage.up()
        await wait_for_cursor(database, tenant=world.a, stream=target.stream, value=2)
    finally:
        stop.set()
        await asyncio.wait_for(running, 15)
        if outage.server is not None:
            await outage.down()

    assert cursor_during == 1
    assert alive_during
    a_messages = [m for m in await stored(target) if m["event"]["tenantid"] == world.a]
    assert [m["event"]["subject"] for m in a_messages] == ["before", "during"]


async def test_the_worker_publishes_when_nats_is_configured(
    database_url: str, tmp_path: Path, world: TenantWorld, database: Database, target: Target
) -> None:
    try:
        covering = await target.jetstream.find_stream_name_by_subject("shelfkeeper.probe.Type")
    except nats.js.errors.NotFoundError:
        covering = None
    if covering is not None:
        pytest.skip(f"stream {covering} on this NATS already covers shelfkeeper.>")
    env = cli_environment(
        tmp_path,
        DATABASE_URL=database_url,
        SHELFKEEPER_JWT_SECRET=JWT_SECRET,
        SHELFKEEPER_NATS_URL=NATS_URL,
        SHELFKEEPER_NATS_STREAM=target.stream,
        SHELFKEEPER_RELAY_POLL_INTERVAL_SECONDS="0.2",
    )
    await record(database, tenant=world.a, subject="by-worker")
    worker = start_cli("worker", env=env)
    try:
        await wait_for_cursor(database, tenant=world.a, stream=target.stream, value=1)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)

    assert worker.returncode == 0, errors
    info = await target.jetstream.stream_info(target.stream)
    assert info.config.subjects == ["shelfkeeper.>"]
    mine = [m for m in await stored(target) if m["event"]["tenantid"] == world.a]
    assert [(m["subject"], m["event"]["subject"], m["event"]["sequence"]) for m in mine] == [
        (f"shelfkeeper.{world.a}.InventoryUpdated", "by-worker", 1)
    ]
    assert mine[0]["headers"]["Nats-Msg-Id"] == mine[0]["event"]["id"]
