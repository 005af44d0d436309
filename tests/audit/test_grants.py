"""The trail is append-only for the service: its role may read and insert entries, never
change or remove one (no UPDATE or DELETE grant). Deleting a tenant (offboarding) still
removes its entries, by the foreign key's ON DELETE CASCADE."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from shelfkeeper.db import migrate
from shelfkeeper.db.database import (
    PLATFORM_SCOPE,
    Connection,
    Database,
    bind_tenant,
    init_connection,
)
from tests.audit.factories import entry_count
from tests.conftest import TenantWorld, create_tenant
from tests.location.factories import create_location


@pytest.fixture
async def service_connection(database_url: str) -> AsyncIterator[Connection]:
    """A raw connection as the service role, exactly as the pool prepares them."""
    connection = await asyncpg.connect(database_url)
    await init_connection(connection, role=migrate.SERVICE_ROLE)
    yield connection
    await connection.close()


async def test_the_service_role_may_only_read_and_insert(owner_connection: Connection) -> None:
    granted = await owner_connection.fetch(
        "SELECT privilege_type FROM information_schema.role_table_grants "
        "WHERE table_name = 'audit_entry' AND grantee = $1 ORDER BY privilege_type",
        migrate.SERVICE_ROLE,
    )
    flags = await owner_connection.fetchrow(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = 'audit_entry'"
    )

    assert [row["privilege_type"] for row in granted] == ["INSERT", "SELECT"]
    assert flags is not None
    assert (flags["relrowsecurity"], flags["relforcerowsecurity"]) == (True, True)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entry SET action = 'nothing happened' WHERE tenant_id = $1",
        "UPDATE audit_entry SET before = NULL, after = NULL WHERE tenant_id = $1",
        "DELETE FROM audit_entry WHERE tenant_id = $1",
    ],
)
async def test_the_service_role_cannot_change_or_remove_entries(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    service_connection: Connection,
    statement: str,
) -> None:
    await create_location(client, world, tenant=world.a, code="GRANT-1")
    trail = await owner_connection.fetch("SELECT * FROM audit_entry WHERE tenant_id = $1", world.a)

    transaction = service_connection.transaction()
    await transaction.start()
    try:
        await bind_tenant(service_connection, world.a)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await service_connection.execute(statement, world.a)
    finally:
        await transaction.rollback()

    assert len(trail) == 1
    assert (
        await owner_connection.fetch("SELECT * FROM audit_entry WHERE tenant_id = $1", world.a)
        == trail
    )


async def test_the_service_role_inserts_only_into_the_bound_tenant(
    world: TenantWorld, service_connection: Connection, owner_connection: Connection
) -> None:
    transaction = service_connection.transaction()
    await transaction.start()
    try:
        await bind_tenant(service_connection, world.a)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service_connection.execute(
                "INSERT INTO audit_entry (tenant_id, actor, action, entity_type) "
                "VALUES ($1, 'forger', 'create', 'location')",
                world.b,
            )
    finally:
        await transaction.rollback()
    assert await entry_count(owner_connection, tenant=world.b) == 0


async def delete_tenant_as_the_service(service_connection: Connection, tenant_id: str) -> str:
    """Delete the tenant row the way offboarding does: the service role, platform scope."""
    async with service_connection.transaction():
        await bind_tenant(service_connection, PLATFORM_SCOPE)
        status: str = await service_connection.execute(
            "DELETE FROM tenant WHERE id = $1", tenant_id
        )
    return status


async def test_deleting_the_tenant_removes_its_entries(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    service_connection: Connection,
) -> None:
    await create_location(client, world, tenant=world.a, code="GONE-1")
    await create_location(client, world, tenant=world.b, code="KEPT-1")
    assert await entry_count(owner_connection, tenant=world.a) == 1

    status = await delete_tenant_as_the_service(service_connection, world.a)

    assert status == "DELETE 1"
    assert await entry_count(owner_connection, tenant=world.a) == 0
    assert await entry_count(owner_connection, tenant=world.b) == 1


async def test_the_cascade_works_for_an_owner_that_is_no_superuser(
    database: Database, world: TenantWorld, owner_connection: Connection
) -> None:
    """The test database's owner is a superuser, who bypasses row-level security anyway.
    A production owner may not be: hand the table to a plain role (in a transaction that
    is rolled back), and the cascade still runs as that owner through FORCE ROW LEVEL
    SECURITY, with the service role still unable to delete an entry itself."""
    tenant = await create_tenant(database)
    async with database.tenant_transaction(tenant) as db:
        await db.execute(
            "INSERT INTO audit_entry (tenant_id, actor, action, entity_type) "
            "VALUES ($1, 'user:tester', 'create', 'location')",
            tenant,
        )
    plain_owner = f"shelfkeeper_test_owner_{uuid.uuid4().hex[:8]}"
    transaction = owner_connection.transaction()
    await transaction.start()
    try:
        await owner_connection.execute(f"CREATE ROLE {plain_owner} NOLOGIN")
        await owner_connection.execute(f"ALTER TABLE audit_entry OWNER TO {plain_owner}")
        await owner_connection.execute(f"SET LOCAL ROLE {migrate.SERVICE_ROLE}")
        await bind_tenant(owner_connection, tenant)
        savepoint = owner_connection.transaction()
        await savepoint.start()
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await owner_connection.execute("DELETE FROM audit_entry")
        await savepoint.rollback()
        await bind_tenant(owner_connection, PLATFORM_SCOPE)
        deleted = await owner_connection.execute("DELETE FROM tenant WHERE id = $1", tenant)
        await owner_connection.execute("RESET ROLE")
        remaining = await owner_connection.fetchval(
            "SELECT count(*) FROM audit_entry WHERE tenant_id = $1", tenant
        )
        owner = await owner_connection.fetchval(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'audit_entry'"
        )
    finally:
        await transaction.rollback()

    assert owner == plain_owner
    assert deleted == "DELETE 1"
    assert remaining == 0
