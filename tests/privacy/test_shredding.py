"""Offboarding shreds a tenant's data everywhere: its key share, kept outside the database,
is destroyed once the deletion commits, so a database backup taken before the offboarding
no longer opens either, with the same master key. A deletion that rolls back keeps it."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from shelfkeeper.config import Settings
from shelfkeeper.db import migrate
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database
from shelfkeeper.kit import recording
from shelfkeeper.privacy import crypto
from shelfkeeper.privacy import service as privacy_service
from shelfkeeper.privacy.keystore import DirectoryKeyStore
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate
from tests.conftest import TenantWorld
from tests.database import _execute, server_url, with_database
from tests.order.after_sale import towel_world
from tests.order.factories import order_body, orders_url, read_order
from tests.privacy.factories import ADA, GRACE

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def pg_tool(name: str) -> str:
    found = PG_BIN / name if (PG_BIN / name).exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} (PostgreSQL 15) is needed for the backup test")
    return str(found)


async def order_with(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, customer: dict[str, str]
) -> str:
    _, variant = await towel_world(client, world, tenant=tenant)
    placed = await client.post(
        orders_url(tenant),
        json=order_body(
            lines=[{"variant_id": variant, "quantity": 1, "unit_price": "10.00"}],
            customer=customer,
        ),
        headers=world.headers(tenant),
    )
    assert placed.status_code == 201, placed.text
    order_id: str = placed.json()["id"]
    return order_id


@asynccontextmanager
async def restored_backup(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A `pg_dump` of the session database, taken now, restored into a fresh database;
    yields the service role's pool on the restored copy."""
    dump = tmp_path / "backup.dump"
    await asyncio.to_thread(
        subprocess.run,
        [pg_tool("pg_dump"), "--format=custom", f"--file={dump}", database_url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    url = server_url(tmp_path)
    name = f"shelfkeeper_restore_{uuid.uuid4().hex[:12]}"
    await _execute(url, f'CREATE DATABASE "{name}"')
    restored = with_database(url, name)
    try:
        await asyncio.to_thread(
            subprocess.run,
            [pg_tool("pg_restore"), "--exit-on-error", f"--dbname={restored}", str(dump)],
            check=True,
            capture_output=True,
            timeout=120,
        )
        pool = await Database.connect(restored, role=migrate.SERVICE_ROLE, min_size=1, max_size=2)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        await _execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def open_customer(database: Database, *, tenant: str, order_id: str) -> object:
    """The order's customer, read and opened from `database` (bound to the tenant)."""
    async with database.tenant_transaction(tenant) as db:
        sealed = await db.fetchval(
            "SELECT customer FROM sales_order WHERE tenant_id = $1 AND id = $2::uuid",
            tenant,
            order_id,
        )
        assert isinstance(sealed, bytes)
        return await privacy_service.open_json(
            db, tenant_id=tenant, field="sales_order.customer", sealed=sealed
        )


async def test_a_backup_taken_before_offboarding_no_longer_opens_the_tenants_data(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database_url: str,
    settings: Settings,
    tmp_path: Path,
) -> None:
    grace_order = await order_with(client, world, tenant=world.a, customer=GRACE)
    ada_order = await order_with(client, world, tenant=world.b, customer=ADA)
    store = DirectoryKeyStore(settings.keystore_path)
    assert store.get(world.a) is not None

    async with restored_backup(database_url, tmp_path) as backup:
        # the backup opens, for both tenants: the test can fail
        before = await open_customer(backup, tenant=world.a, order_id=grace_order)
        deleted = await client.delete(f"/api/v1/tenants/{world.a}", headers=world.platform)
        with pytest.raises(privacy_service.DataKeyUnavailable, match="key share"):
            await open_customer(backup, tenant=world.a, order_id=grace_order)
        other_tenant = await open_customer(backup, tenant=world.b, order_id=ada_order)

    assert before == GRACE
    assert deleted.status_code == 204
    assert store.get(world.a) is None
    assert other_tenant == ADA


async def test_a_deletion_that_rolls_back_keeps_the_share_and_the_data(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, settings: Settings
) -> None:
    order_id = await order_with(client, world, tenant=world.a, customer=GRACE)
    store = DirectoryKeyStore(settings.keystore_path)
    share = store.get(world.a)

    class Refused(Exception):
        pass

    async def delete_then_fail() -> None:
        async with database.transaction() as db:
            await tenant_service.delete(db, tenant_id=world.a)
            raise Refused  # e.g. the audit write failed: the transaction rolls back

    with recording.unit_of_work() as work, pytest.raises(Refused):
        await delete_then_fail()
    callbacks_left = len(work.callbacks)
    read = await read_order(client, world, tenant=world.a, order_id=order_id)

    assert share is not None
    assert callbacks_left == 1  # registered, never run: the route runs them after commit
    assert store.get(world.a) == share
    assert read["customer"] == GRACE


async def test_the_share_is_destroyed_only_after_the_deletion_commits(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, settings: Settings
) -> None:
    await order_with(client, world, tenant=world.a, customer=GRACE)
    store = DirectoryKeyStore(settings.keystore_path)

    with recording.unit_of_work() as work:
        async with database.transaction() as db:
            await tenant_service.delete(db, tenant_id=world.a)
            present_before_commit = store.get(world.a) is not None
    present_after_commit = store.get(world.a) is not None
    work.committed()

    assert (present_before_commit, present_after_commit) == (True, True)
    assert store.get(world.a) is None


async def test_a_tenant_created_again_never_takes_over_a_share_left_behind(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
    settings: Settings,
) -> None:
    await order_with(client, world, tenant=world.a, customer=GRACE)
    store = DirectoryKeyStore(settings.keystore_path)
    old_share = store.get(world.a)
    # deleted outside a unit of work (as after a crash between commit and unlink): the
    # share stays behind
    async with database.transaction() as db:
        await tenant_service.delete(db, tenant_id=world.a)
    left_behind = store.get(world.a)
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        await tenant_service.create(db, body=TenantCreate(id=world.a, name="A"))
    order_id = await order_with(client, world, tenant=world.a, customer=ADA)
    new_share = store.get(world.a)
    key = await owner_connection.fetchrow(
        "SELECT version, scheme FROM tenant_data_key WHERE tenant_id = $1", world.a
    )
    read = await read_order(client, world, tenant=world.a, order_id=order_id)

    assert old_share is not None
    assert left_behind == old_share
    assert new_share is not None
    assert new_share != old_share
    assert key is not None
    assert (key["version"], key["scheme"]) == (1, crypto.MASTER_AND_SHARE)
    assert read["customer"] == ADA | {"phone": None}
