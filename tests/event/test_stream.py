"""`GET /api/v1/{tenantId}/events/stream`: Server-Sent Events from a real server.

`httpx.ASGITransport` delivers a response only once it is complete, so the stream is read
from `shelfkeeper serve` as a subprocess on the loopback interface (its relay running
in-process), joined to this session's database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Database
from tests.conftest import JWT_SECRET, TenantWorld
from tests.event.factories import record
from tests.test_cli import Server, cli_environment, serving

HEARTBEAT_SECONDS = 0.3
READ_TIMEOUT = 10


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("stream")
    env = cli_environment(
        data_dir,
        DATABASE_URL=database_url,
        SHELFKEEPER_JWT_SECRET=JWT_SECRET,
        SHELFKEEPER_EVENTS_STREAM_HEARTBEAT_SECONDS=str(HEARTBEAT_SECONDS),
        SHELFKEEPER_EVENTS_STREAM_POLL_SECONDS="0.2",
        SHELFKEEPER_RELAY_POLL_INTERVAL_SECONDS="0.5",
        SHELFKEEPER_MAINTENANCE_INTERVAL_SECONDS="0",
    )
    with serving(env, Path(data_dir) / "serve.log") as running:
        running.wait_ready()
        yield running
        running.stop()


def stream_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/events/stream"


async def read_messages(
    lines: AsyncIterator[str], *, count: int, comments: bool = False
) -> list[dict[str, Any]]:
    """The next `count` messages (comment lines too, as {"comment": text}, if asked)."""
    messages: list[dict[str, Any]] = []
    fields: dict[str, Any] = {}
    async with asyncio.timeout(READ_TIMEOUT):
        async for line in lines:
            if line.startswith(":"):
                if comments:
                    messages.append({"comment": line[1:].strip()})
            elif line == "":
                if fields:
                    messages.append(fields)
                    fields = {}
            else:
                name, _, value = line.partition(": ")
                fields[name] = json.loads(value) if name == "data" else value
            if len(messages) >= count:
                return messages
    raise AssertionError(f"the stream ended after {messages}")


async def test_resumes_after_last_event_id_and_sends_new_events_live(
    server: Server, world: TenantWorld, database: Database
) -> None:
    for number in range(3):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    headers = {**world.headers(world.a, "viewer"), "Last-Event-ID": "1"}

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=READ_TIMEOUT) as client,
        client.stream("GET", stream_url(world.a), headers=headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        resumed = await read_messages(lines, count=2)
        await record(database, tenant=world.a, subject="inventory/live")
        live = await read_messages(lines, count=1)

    assert [(message["id"], message["event"]) for message in resumed] == [
        ("2", "InventoryUpdated"),
        ("3", "InventoryUpdated"),
    ]
    assert [message["data"]["subject"] for message in resumed] == ["inventory/1", "inventory/2"]
    assert resumed[0]["data"]["sequence"] == 2
    assert resumed[0]["data"]["tenantid"] == world.a
    assert live[0]["id"] == "4"
    assert live[0]["data"]["subject"] == "inventory/live"


async def test_after_parameter_and_heartbeats(
    server: Server, world: TenantWorld, database: Database
) -> None:
    for number in range(2):
        await record(database, tenant=world.a, subject=f"inventory/{number}")
    await record(database, tenant=world.b, subject="inventory/other-tenant")

    async with (
        httpx.AsyncClient(base_url=server.url, timeout=READ_TIMEOUT) as client,
        client.stream(
            "GET",
            stream_url(world.a),
            params={"after": 1},
            headers=world.headers(world.a, "viewer"),
        ) as response,
    ):
        messages = await read_messages(response.aiter_lines(), count=5, comments=True)

    events = [message for message in messages if "id" in message]
    heartbeats = [message for message in messages if message.get("comment") == "heartbeat"]
    assert [event["data"]["subject"] for event in events] == ["inventory/1"]
    assert len(heartbeats) >= 2


async def test_refuses_anonymous_other_tenant_and_a_bad_last_event_id(
    server: Server, world: TenantWorld
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=READ_TIMEOUT) as client:
        anonymous = await client.get(stream_url(world.a))
        other_tenant = await client.get(stream_url(world.a), headers=world.headers(world.b))
        malformed = await client.get(
            stream_url(world.a), headers={**world.headers(world.a), "Last-Event-ID": "x"}
        )

    assert anonymous.status_code == 401
    assert other_tenant.status_code == 403
    assert other_tenant.json()["type"] == "https://shelfkeeper.dev/problems/tenant-mismatch"
    assert malformed.status_code == 422


async def test_a_stream_holds_no_database_connection_while_it_waits(
    server: Server, world: TenantWorld, owner_connection: Any
) -> None:
    async with (
        httpx.AsyncClient(base_url=server.url, timeout=READ_TIMEOUT) as client,
        client.stream(
            "GET", stream_url(world.a), headers=world.headers(world.a, "viewer")
        ) as response,
    ):
        await read_messages(response.aiter_lines(), count=4, comments=True)
        idle_in_transaction = await owner_connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND state LIKE 'idle in transaction%' "
            "AND (query LIKE '%FROM event%' OR query LIKE '%app.tenant_id%') "
            # a stream holding a transaction would have held it since the stream began (about
            # a second ago); the relay's own transactions last milliseconds
            "AND now() - xact_start > interval '250 milliseconds'"
        )

    assert idle_in_transaction == 0
