"""One transaction per request, taken only once the request body has fully arrived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.location.factories import location_count, locations_url


def connections_in_use(database: Database) -> int:
    return database.pool.get_size() - database.pool.get_idle_size()


async def test_a_slow_upload_holds_no_database_connection(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    halfway = asyncio.Event()
    finish = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"code": "WH-1", '
        halfway.set()
        await finish.wait()
        yield b'"name": "Main", "kind": "store"}'

    upload = asyncio.create_task(
        client.post(
            locations_url(world.a),
            content=slow_body(),
            headers=world.headers(world.a) | {"Content-Type": "application/json"},
        )
    )
    await asyncio.wait_for(halfway.wait(), timeout=5)
    await asyncio.sleep(0.05)
    in_use_while_uploading = connections_in_use(database)
    finish.set()
    response = await asyncio.wait_for(upload, timeout=5)

    assert in_use_while_uploading == 0
    assert response.status_code == 201, response.text
    assert await location_count(owner_connection, tenant=world.a) == 1
    assert connections_in_use(database) == 0
