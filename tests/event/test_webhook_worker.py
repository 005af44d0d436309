"""At least once, across a crash: `shelfkeeper worker` SIGKILLed while a delivery is in
flight leaves a lease that runs out, and the next worker delivers the event."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

from shelfkeeper.auth.principal import Principal, Role
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database
from shelfkeeper.event import webhook_service
from shelfkeeper.event.webhook_schemas import WebhookCreate
from shelfkeeper.kit import outbound
from shelfkeeper.privacy import service as privacy_service
from tests.conftest import JWT_SECRET, TenantWorld
from tests.event.factories import record
from tests.event.webhook_receiver import Received, Receiver
from tests.test_cli import cli_environment, start_cli

TIMEOUT_SECONDS = 2
"""The worker's attempt timeout: its leases last this plus the 5-second margin."""


def admin(tenant: str) -> Principal:
    return Principal(
        subject="tester", tenant_id=tenant, roles=frozenset({Role.ADMIN}), credential="jwt"
    )


def stop(worker: subprocess.Popen[str], sig: signal.Signals) -> str:
    if worker.poll() is None:
        worker.send_signal(sig)
    _, errors = worker.communicate(timeout=30)
    return errors


async def delivery_state(owner: Connection, *, tenant: str) -> tuple[str, int, bool]:
    row = await owner.fetchrow(
        """
        SELECT status, attempts, coalesce(locked_until > clock_timestamp(), false) AS leased
        FROM webhook_delivery WHERE tenant_id = $1
        """,
        tenant,
    )
    assert row is not None
    return row["status"], row["attempts"], row["leased"]


async def test_a_delivery_in_flight_when_the_worker_is_killed_is_delivered_by_the_next(
    database_url: str,
    settings: Settings,
    tmp_path: Path,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    release = asyncio.Event()

    async def hang_first(_: Received, index: int) -> int:
        if index == 0:
            await release.wait()  # never answers: the worker dies waiting
        return 204

    env = cli_environment(
        tmp_path,
        DATABASE_URL=database_url,
        SHELFKEEPER_JWT_SECRET=JWT_SECRET,
        # the key the endpoint's secret was sealed under (the tenant's data key is wrapped by it)
        SHELFKEEPER_MASTER_KEY=settings.master_key_bytes.decode(),
        # and the tenant's key share, kept outside the database
        SHELFKEEPER_KEYSTORE_DIR=str(settings.keystore_path),
        SHELFKEEPER_RELAY_POLL_INTERVAL_SECONDS="0.2",
        SHELFKEEPER_WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
        SHELFKEEPER_WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
    )
    # the tenant's data key (which seals the endpoint's secret) is wrapped under the master
    # key the worker is given
    privacy_service.use_master_key(settings)
    async with Receiver(hang_first) as receiver:
        async with database.tenant_transaction(world.a) as db:
            webhook = await webhook_service.create(
                db,
                admin(world.a),
                body=WebhookCreate(url=receiver.url(), events=["InventoryUpdated"]),
                allow_private=True,
                resolver=outbound.system_resolver,
            )
        first = start_cli("worker", env=env)
        try:
            await record(database, tenant=world.a, subject="inventory/killed")
            [hung] = await receiver.wait_for(1, seconds=30)
            first.kill()  # SIGKILL, mid-delivery
            first.wait(timeout=30)
        finally:
            stop(first, signal.SIGKILL)
        assert first.returncode == -signal.SIGKILL
        assert await delivery_state(owner_connection, tenant=world.a) == ("pending", 1, True)

        second = start_cli("worker", env=env)
        try:
            _, delivered = await receiver.wait_for(2, seconds=TIMEOUT_SECONDS + 5 + 30)
            async with asyncio.timeout(30):
                while True:
                    status, _, _ = await delivery_state(owner_connection, tenant=world.a)
                    if status == "succeeded":
                        break
                    await asyncio.sleep(0.05)
        finally:
            errors = stop(second, signal.SIGTERM)
            release.set()
        assert second.returncode == 0, errors

    assert delivered.headers["webhook-id"] == hung.headers["webhook-id"]
    assert delivered.verified(webhook.secret) == hung.verified(webhook.secret)
    assert await delivery_state(owner_connection, tenant=world.a) == ("succeeded", 2, False)
    log = await owner_connection.fetch(
        "SELECT attempt, status_code FROM webhook_attempt WHERE tenant_id = $1", world.a
    )
    # The killed attempt left no log line; the one that delivered is number 2.
    assert [(row["attempt"], row["status_code"]) for row in log] == [(2, 204)]
