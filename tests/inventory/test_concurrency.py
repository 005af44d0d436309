"""Concurrent clients racing for the same stock: exactly the available units are reserved.

First through the in-process app (many requests on one event loop sharing the pool), then
against a real server: `shelfkeeper serve --workers 2` as a subprocess on the loopback
interface, so two processes with two pools race on the same row.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import JWT_SECRET, TenantWorld, bearer
from tests.inventory.factories import create_item, levels, movement_count, new_location, stock

REQUESTS = 120
AVAILABLE = 50
PROBLEMS = "https://shelfkeeper.dev/problems/"


async def reserve_one_each(
    client: httpx.AsyncClient, *, url: str, location: str, token: str
) -> list[httpx.Response]:
    """REQUESTS concurrent `reserve 1` requests, each on its own connection."""

    async def reserve(number: int) -> httpx.Response:
        return await client.patch(
            url,
            json={
                "operation": "reserve",
                "quantity": 1,
                "location_id": location,
                "reference": f"race:{number}",
            },
            headers=bearer(token),
        )

    return await asyncio.gather(*(reserve(number) for number in range(REQUESTS)))


async def assert_exactly_the_available_units_were_reserved(
    responses: list[httpx.Response],
    owner: Connection,
    *,
    tenant: str,
    variant: str,
    location: str,
) -> None:
    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: AVAILABLE, 409: REQUESTS - AVAILABLE}, [
        response.text for response in responses if response.status_code not in (200, 409)
    ]
    refused = [response.json() for response in responses if response.status_code == 409]
    assert {problem["type"] for problem in refused} == {PROBLEMS + "insufficient-stock"}
    assert {problem["available"] for problem in refused} == {0}
    granted = sorted(
        response.json()["level"]["reserved"]
        for response in responses
        if response.status_code == 200
    )
    assert granted == list(range(1, AVAILABLE + 1))
    assert await levels(owner, tenant=tenant) == {(variant, location): (AVAILABLE, AVAILABLE, 51)}
    assert await movement_count(owner, tenant=tenant, operation="reserve") == AVAILABLE
    references = await owner.fetch(
        "SELECT reference FROM stock_movement WHERE tenant_id = $1 AND operation = 'reserve'",
        tenant,
    )
    assert len({row["reference"] for row in references}) == AVAILABLE


async def fifty_on_hand(
    client: httpx.AsyncClient, world: TenantWorld
) -> tuple[dict[str, object], str, str]:
    """A towel with 50 available at one location: the item, its variant id, the location."""
    location = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a)
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=str(item["id"]),
        operation="add",
        quantity=AVAILABLE,
        location_id=location,
    )
    return item, item["variants"][0]["id"], location


async def test_concurrent_reservations_through_the_app_never_oversell(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    item, variant, location = await fifty_on_hand(client, world)

    responses = await reserve_one_each(
        client,
        url=f"/api/v1/{world.a}/inventory/{item['id']}/stock",
        location=location,
        token=world.token(world.a, "clerk"),
    )

    await assert_exactly_the_available_units_were_reserved(
        responses, owner_connection, tenant=world.a, variant=variant, location=location
    )


# --- a real server with two worker processes ---------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


def read_log(path: Path) -> str:
    return path.read_text()


async def wait_until_ready(
    process: asyncio.subprocess.Process, base_url: str, log: Path, *, seconds: float = 60
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as probe:
        deadline = asyncio.get_running_loop().time() + seconds
        while asyncio.get_running_loop().time() < deadline:
            if process.returncode is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{read_log(log)}")
            try:
                if (await probe.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    pytest.fail(f"server not ready after {seconds} s:\n{read_log(log)}")


async def stop(process: asyncio.subprocess.Process) -> None:
    """SIGTERM (a graceful shutdown of the supervisor and its workers), SIGKILL if stuck."""
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=20)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """`shelfkeeper serve --workers 2` on a free loopback port: its base URL and log file."""
    port = free_port()
    log = tmp_path / "server.log"
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("SHELFKEEPER_")
    } | {
        "DATABASE_URL": database_url,
        "SHELFKEEPER_JWT_SECRET": JWT_SECRET,
        "SHELFKEEPER_DATA_DIR": str(tmp_path / "data"),
        "SHELFKEEPER_DATABASE_POOL_MIN_SIZE": "1",
        "SHELFKEEPER_DATABASE_POOL_MAX_SIZE": "10",
    }
    with open_log(log) as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shelfkeeper.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            env=environment,
            stdout=output,
            stderr=output,
            start_new_session=True,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await wait_until_ready(process, base_url, log)
        yield base_url, log
    finally:
        await stop(process)


async def test_concurrent_reservations_against_two_server_processes_never_oversell(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    server: tuple[str, Path],
) -> None:
    base_url, log = server
    item, variant, location = await fifty_on_hand(client, world)
    limits = httpx.Limits(max_connections=REQUESTS, max_keepalive_connections=REQUESTS)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as remote:
        responses = await reserve_one_each(
            remote,
            url=f"/api/v1/{world.a}/inventory/{item['id']}/stock",
            location=location,
            token=world.token(world.a, "clerk"),
        )

    await assert_exactly_the_available_units_were_reserved(
        responses, owner_connection, tenant=world.a, variant=variant, location=location
    )
    workers = set(re.findall(r"Started server process \[(\d+)\]", read_log(log)))
    assert len(workers) == 2, read_log(log)
