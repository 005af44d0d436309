"""`shelfkeeper worker`: the relay as its own process, stopped cleanly by a signal."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from shelfkeeper.db.database import Connection, Database
from tests.conftest import JWT_SECRET, TenantWorld
from tests.event.factories import record, sequences
from tests.test_cli import cli_environment, start_cli


async def test_the_worker_relays_and_stops_on_sigterm(
    database_url: str,
    tmp_path: Path,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    env = cli_environment(
        tmp_path,
        DATABASE_URL=database_url,
        SHELFKEEPER_JWT_SECRET=JWT_SECRET,
        SHELFKEEPER_RELAY_POLL_INTERVAL_SECONDS="0.2",
    )
    worker = start_cli("worker", env=env)
    try:
        await record(database, tenant=world.a, subject="by-worker")
        for _ in range(300):
            if (await sequences(owner_connection, tenant=world.a))["by-worker"] is not None:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)

    assert await sequences(owner_connection, tenant=world.a) == {"by-worker": 1}
    assert worker.returncode == 0, errors
    assert "relay stopped" in errors
