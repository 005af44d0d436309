"""The relay numbers committed events per tenant, in commit order, exactly once."""

from __future__ import annotations

import asyncio

import httpx

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.event import relay
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from tests.conftest import TenantWorld
from tests.event.factories import events_url, record, sequences
from tests.inventory.factories import adjust, create_item, new_location

CHANGES = 200


async def relay_until_done(database: Database, *, tenant: str, limit: int = 1000) -> None:
    """Relay the tenant, retrying while another relay holds its lock."""
    for _ in range(1000):
        if await relay.relay_tenant(database, tenant_id=tenant, limit=limit):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the relay lock stayed taken")


async def test_concurrent_stock_changes_get_gapless_sequences_a_consumer_never_misses(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    locations = [
        await new_location(client, world, tenant=world.a, code=f"WH-{number}")
        for number in range(4)
    ]
    item = await create_item(client, world, tenant=world.a)
    running = True

    async def change(number: int) -> int:
        response = await adjust(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=1,
            location_id=locations[number % len(locations)],
        )
        return response.status_code

    async def relay_continuously() -> None:
        while running:
            await relay.relay_tenant(database, tenant_id=world.a, limit=17)
            await asyncio.sleep(0)

    seen: list[int] = []

    async def consume() -> None:
        cursor = 0
        while True:
            response = await client.get(
                events_url(world.a),
                params={"after": cursor, "limit": 200},
                headers=world.headers(world.a, "viewer"),
            )
            assert response.status_code == 200, response.text
            page = response.json()
            for event in page["data"]:
                assert event["sequence"] > cursor
                seen.append(event["sequence"])
                cursor = event["sequence"]
            assert page["next_cursor"] == cursor
            if not running and not page["data"]:
                return
            await asyncio.sleep(0.005)

    relays = [asyncio.create_task(relay_continuously()) for _ in range(3)]
    consumer = asyncio.create_task(consume())
    statuses = await asyncio.gather(*(change(number) for number in range(CHANGES)))
    await relay.relay_tenant(database, tenant_id=world.a)
    running = False
    await asyncio.gather(*relays)
    await relay_until_done(database, tenant=world.a)
    await consumer

    assert statuses == [200] * CHANGES
    numbered = await owner_connection.fetch(
        "SELECT sequence FROM event WHERE tenant_id = $1 AND type = 'InventoryUpdated' "
        "ORDER BY sequence",
        world.a,
    )
    total = await owner_connection.fetchval(
        "SELECT count(*) FROM event WHERE tenant_id = $1", world.a
    )
    assert len(numbered) == CHANGES
    assert (
        await owner_connection.fetchval(
            "SELECT count(*) FROM event WHERE tenant_id = $1 AND sequence IS NULL", world.a
        )
        == 0
    )
    all_sequences = [
        row["sequence"]
        for row in await owner_connection.fetch(
            "SELECT sequence FROM event WHERE tenant_id = $1 ORDER BY sequence", world.a
        )
    ]
    assert all_sequences == list(range(1, total + 1))
    # The consumer saw every sequence exactly once, in order: nothing slipped in behind it.
    assert seen == list(range(1, total + 1))


async def test_a_late_commit_is_numbered_after_an_earlier_relayed_one(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    async with database.tenant_transaction(world.a) as late:
        await event_service.record(
            late, tenant_id=world.a, type=EventType.ORDER_PLACED, subject="late", data={}
        )
        assert await relay.relay_tenant(database, tenant_id=world.a)
        await record(database, tenant=world.a, subject="early")
        assert await relay.relay_tenant(database, tenant_id=world.a)
        # "late" was written first (its `time` is earlier) but has not committed.
        assert await sequences(owner_connection, tenant=world.a) == {"early": 1}
    assert await relay.relay_tenant(database, tenant_id=world.a)

    assert await sequences(owner_connection, tenant=world.a) == {"late": 2, "early": 1}


async def test_a_relay_skips_a_tenant_another_relay_holds(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    await record(database, tenant=world.a, subject="one")
    async with database.tenant_transaction(world.a) as first:
        assert await relay.assign_sequences(first, tenant_id=world.a, limit=10) == 1
        async with database.tenant_transaction(world.a) as second:
            assert await relay.assign_sequences(second, tenant_id=world.a, limit=10) is None
        assert await relay.relay_tenant(database, tenant_id=world.a) is False
    # Another tenant's relay is not held up.
    await record(database, tenant=world.b, subject="other")
    assert await relay.relay_tenant(database, tenant_id=world.b)

    assert await sequences(owner_connection, tenant=world.a) == {"one": 1}
    assert await sequences(owner_connection, tenant=world.b) == {"other": 1}


async def test_two_relays_at_once_number_each_event_once(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    for number in range(50):
        await record(database, tenant=world.a, subject=f"e{number}")

    await asyncio.gather(*(relay_until_done(database, tenant=world.a, limit=7) for _ in range(3)))

    assert sorted((await sequences(owner_connection, tenant=world.a)).values()) == list(  # type: ignore[type-var]
        range(1, 51)
    )


async def test_sequences_are_per_tenant(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    await record(database, tenant=world.a, subject="a1")
    await record(database, tenant=world.b, subject="b1")
    await record(database, tenant=world.a, subject="a2")
    for tenant in (world.a, world.b):
        assert await relay.relay_tenant(database, tenant_id=tenant)

    assert await sequences(owner_connection, tenant=world.a) == {"a1": 1, "a2": 2}
    assert await sequences(owner_connection, tenant=world.b) == {"b1": 1}


async def test_the_running_relay_is_woken_by_a_commit(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    stop = asyncio.Event()
    running = asyncio.create_task(relay.run(database, stop=stop, poll_interval=3600))
    try:
        await asyncio.sleep(0.3)  # its first pass over every tenant, and LISTEN
        await record(database, tenant=world.a, subject="woken")
        for _ in range(100):
            if (await sequences(owner_connection, tenant=world.a))["woken"] is not None:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)

    assert await sequences(owner_connection, tenant=world.a) == {"woken": 1}


async def test_a_stock_statement_wakes_the_relay(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)
    payloads: list[str] = []
    listener = await database.listener(event_service.CHANNEL, payloads.append)
    try:
        response = await adjust(
            client,
            world,
            tenant=world.a,
            item_id=item["id"],
            operation="add",
            quantity=3,
            location_id=location,
        )
        assert response.status_code == 200, response.text
        for _ in range(100):
            if payloads:
                break
            await asyncio.sleep(0.01)
    finally:
        await listener.close()

    assert world.a in payloads


async def test_events_written_in_the_same_microsecond_are_numbered_as_written(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    # One statement may write many events within one microsecond of `clock_timestamp()`
    # (a coalesced reservation round writes one per request); here every one has the same.
    await owner_connection.execute(
        """
        INSERT INTO event (tenant_id, type, subject, data, time)
        SELECT $1, 'InventoryUpdated', 'inventory/tie', jsonb_build_object('n', n),
               '2026-12-04T12:00:00Z'
        FROM generate_series(1, 60) AS n
        ORDER BY n
        """,
        world.a,
    )

    assert await relay.relay_tenant(database, tenant_id=world.a)

    written = await owner_connection.fetch(
        "SELECT (data->>'n')::int AS n FROM event WHERE tenant_id = $1 "
        "AND subject = 'inventory/tie' ORDER BY sequence",
        world.a,
    )
    assert [row["n"] for row in written] == list(range(1, 61))


async def test_a_poll_visits_only_the_tenants_with_unnumbered_events(
    world: TenantWorld, database: Database, owner_connection: Connection
) -> None:
    await record(database, tenant=world.a, subject="waiting")

    pending = await relay.unsequenced_tenant_ids(database)

    assert world.a in pending
    assert world.b not in pending
    # the service role's own view is unchanged: bound to nobody, it sees no event at all
    async with database.transaction() as db:
        assert await db.fetchval("SELECT count(*) FROM event") == 0
    assert await relay.relay_tenant(database, tenant_id=world.a)
    assert world.a not in await relay.unsequenced_tenant_ids(database)
