"""`PATCH .../stock` reserve through the flash-sale fast path: the same answers as the plain
path, one audit entry per accepted request in the round's transaction, and the plain path
for requests it does not take (an Idempotency-Key)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shelfkeeper.app import create_app
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database
from shelfkeeper.db.rls import SERVICE_ROLE
from shelfkeeper.inventory.coalescer import ReservationCoalescer
from tests.conftest import TenantWorld
from tests.inventory.factories import create_item, new_location, stock, stock_url
from tests.inventory.test_coalescer import assert_ledger_sound, level_row

PROBLEMS = "https://shelfkeeper.dev/problems/"


@pytest.fixture
async def coalescing(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    """An app whose stock reservations go through a coalescer on a pool of its own."""
    assert database.dsn is not None
    rounds = await Database.connect(database.dsn, role=SERVICE_ROLE, min_size=1, max_size=2)
    app = create_app(settings, database)
    app.state.coalescer = ReservationCoalescer(rounds)
    try:
        yield app
    finally:
        await rounds.close()


@pytest.fixture
async def fast(coalescing: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=coalescing)
    async with httpx.AsyncClient(transport=transport, base_url="http://shelfkeeper.test") as client:
        yield client


async def hot_item(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, on_hand: int
) -> tuple[dict[str, Any], str]:
    location = await new_location(client, world, tenant=tenant)
    item = await create_item(client, world, tenant=tenant)
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="add",
        quantity=on_hand,
        location_id=location,
    )
    return item, location


def reserve(location: str, **fields: Any) -> dict[str, Any]:
    return {"operation": "reserve", "quantity": 1, "location_id": location, **fields}


async def test_concurrent_reservations_are_coalesced_without_overselling(
    fast: httpx.AsyncClient,
    coalescing: FastAPI,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    item, location = await hot_item(fast, world, tenant=world.a, on_hand=30)
    url = stock_url(world.a, item["id"])

    responses = await asyncio.gather(
        *(
            fast.patch(
                url,
                json=reserve(location, reference=f"flash:{number}"),
                headers=world.headers(world.a, "clerk") | {"X-Request-ID": f"flash-{number}"},
            )
            for number in range(100)
        )
    )

    assert Counter(response.status_code for response in responses) == {200: 30, 409: 70}
    refusals = [response.json() for response in responses if response.status_code == 409]
    assert {(body["type"], body["available"], body["on_hand"]) for body in refusals} == {
        (PROBLEMS + "insufficient-stock", 0, 30)
    }
    accepted = sorted(
        response.json()["movement"]["reserved_after"]
        for response in responses
        if response.status_code == 200
    )
    assert accepted == list(range(1, 31))
    variant = item["variants"][0]["id"]
    assert (await level_row(owner_connection, tenant=world.a, variant=variant))[:2] == (30, 30)
    assert coalescing.state.coalescer.rounds < 100
    entries = await owner_connection.fetch(
        "SELECT actor, role, action, entity_id, request_id, after FROM audit_entry "
        "WHERE tenant_id = $1 AND action = 'adjust_stock' AND after->>'operation' = 'reserve'",
        world.a,
    )
    ok = {response.headers["X-Request-ID"] for response in responses if response.status_code == 200}
    assert {entry["request_id"] for entry in entries} == ok
    assert {(entry["actor"], entry["role"], entry["entity_id"]) for entry in entries} == {
        ("user:tester", "clerk", item["id"])
    }
    await assert_ledger_sound(database, world.a)


async def test_the_fast_path_answers_as_the_plain_path_does(
    fast: httpx.AsyncClient,
    client: httpx.AsyncClient,
    coalescing: FastAPI,
    world: TenantWorld,
) -> None:
    item, location = await hot_item(fast, world, tenant=world.a, on_hand=5)
    url = stock_url(world.a, item["id"])

    coalesced = await fast.patch(url, json=reserve(location), headers=world.headers(world.a))
    plain = await client.patch(url, json=reserve(location), headers=world.headers(world.a))

    assert (coalesced.status_code, plain.status_code) == (200, 200)
    assert coalescing.state.coalescer.rounds == 1
    first, second = coalesced.json(), plain.json()
    assert first.keys() == second.keys()
    assert first["level"] | {"reserved": 2, "available": 3, "version": 3} == second["level"]
    assert first["movement"].keys() == second["movement"].keys()
    assert (first["movement"]["reserved_after"], second["movement"]["reserved_after"]) == (1, 2)


async def test_a_request_with_an_idempotency_key_takes_the_plain_path(
    fast: httpx.AsyncClient, coalescing: FastAPI, world: TenantWorld
) -> None:
    item, location = await hot_item(fast, world, tenant=world.a, on_hand=5)
    url = stock_url(world.a, item["id"])
    headers = world.headers(world.a) | {"Idempotency-Key": "flash-once"}

    first = await fast.patch(url, json=reserve(location), headers=headers)
    again = await fast.patch(url, json=reserve(location), headers=headers)

    assert (first.status_code, again.status_code) == (200, 200)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert coalescing.state.coalescer.rounds == 0


async def test_a_refused_reservation_writes_no_audit_entry(
    fast: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
) -> None:
    item, location = await hot_item(fast, world, tenant=world.a, on_hand=1)
    url = stock_url(world.a, item["id"])
    before = await owner_connection.fetchval(
        "SELECT count(*) FROM audit_entry WHERE tenant_id = $1", world.a
    )

    refused = await fast.patch(
        url, json=reserve(location, quantity=2), headers=world.headers(world.a)
    )

    assert refused.status_code == 409
    assert (refused.json()["available"], refused.json()["requested"]) == (1, 2)
    after = await owner_connection.fetchval(
        "SELECT count(*) FROM audit_entry WHERE tenant_id = $1", world.a
    )
    assert after == before
