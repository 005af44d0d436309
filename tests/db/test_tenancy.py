"""Tenancy is enforced by PostgreSQL: row-level security, forced, on every tenant table.

These tests use raw SQL as the service role, the way the service's own queries run, and
show that a query which forgets its tenant filter still touches nothing of another tenant.
"""

from __future__ import annotations

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
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from tests.conftest import TenantWorld
from tests.event.webhook_receiver import seed_webhook_tables
from tests.order.after_sale import new_secret, send_callback

PLATFORM_TABLES = {"tenant", "alembic_version", "platform_audit_entry"}
"""Tables without a `tenant_id`: the tenant registry itself, Alembic's bookkeeping and the
platform audit trail."""
PLATFORM_SCOPED_TABLES = {"platform_audit_entry"}
"""Platform tables under forced row-level security of their own: rows visible and
insertable only in the platform scope (`app.tenant_id` = `_platform`), append-only."""
APPEND_ONLY_TABLES = {"audit_entry"}
"""Tenant tables the service role may read and insert into but never update or delete from."""


async def tenant_tables(owner: Connection) -> list[str]:
    rows = await owner.fetch(
        """
        SELECT c.relname FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped
        WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        ORDER BY c.relname
        """
    )
    return [row["relname"] for row in rows]


@pytest.fixture
async def service_connection(database_url: str) -> AsyncIterator[Connection]:
    """A raw connection switched to the service role, exactly as the pool prepares them."""
    connection = await asyncpg.connect(database_url)
    await init_connection(connection, role=migrate.SERVICE_ROLE)
    yield connection
    await connection.close()


async def seed_every_table(client: httpx.AsyncClient, world: TenantWorld, tenant: str) -> None:
    """Give `tenant` at least one row in every tenant-owned table, through the API (events
    through the outbox service, until an endpoint records them)."""
    database: Database = client._transport.app.state.database  # type: ignore[attr-defined]
    async with database.tenant_transaction(tenant) as db:
        await event_service.record(
            db, tenant_id=tenant, type=EventType.ORDER_PLACED, subject="seed", data={}
        )
    headers = world.headers(tenant) | {"Idempotency-Key": f"seed-{tenant}"}
    created = await client.post(
        f"/api/v1/{tenant}/locations",
        json={"code": "WH1", "name": "Warehouse", "kind": "warehouse"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    key = await client.post(
        f"/api/v1/{tenant}/api-keys",
        json={"name": "scanner", "role": "clerk"},
        headers=world.headers(tenant),
    )
    assert key.status_code == 201, key.text
    item = await client.post(
        f"/api/v1/{tenant}/inventory",
        json={"sku": "SKU-1", "name": "Towel"},
        headers=world.headers(tenant),
    )
    assert item.status_code == 201, item.text
    stocked = await client.patch(
        f"/api/v1/{tenant}/inventory/{item.json()['id']}/stock",
        json={"operation": "add", "quantity": 5, "location_id": created.json()["id"]},
        headers=world.headers(tenant),
    )
    assert stocked.status_code == 200, stocked.text
    held = await client.post(
        f"/api/v1/{tenant}/reservations",
        json={"lines": [{"sku": "SKU-1", "quantity": 1}], "ttl_seconds": 600},
        headers=world.headers(tenant),
    )
    assert held.status_code == 201, held.text
    order = await client.post(
        f"/api/v1/{tenant}/orders",
        json={
            "customer": {"email": "ada@example.com"},
            "currency": "USD",
            "lines": [{"sku": "SKU-1", "quantity": 1, "unit_price": "5.00"}],
        },
        headers=world.headers(tenant),
    )
    assert order.status_code == 201, order.text
    paid = await client.post(
        f"/api/v1/{tenant}/orders/{order.json()['id']}/payments",
        json={"amount": "5.00", "provider": "manual"},
        headers=world.headers(tenant),
    )
    assert paid.status_code == 201, paid.text
    order_url = f"/api/v1/{tenant}/orders/{order.json()['id']}"
    for status in ("processed", "shipped"):
        moved = await client.patch(
            order_url, json={"status": status}, headers=world.headers(tenant)
        )
        assert moved.status_code == 200, moved.text
    returned = await client.post(
        f"{order_url}/returns",
        json={
            "lines": [{"line_id": order.json()["lines"][0]["id"], "quantity": 1, "restock": True}]
        },
        headers=world.headers(tenant),
    )
    assert returned.status_code == 201, returned.text
    refunded = await client.post(
        f"{order_url}/refunds",
        json={"amount": "1.00", "return_id": returned.json()["id"]},
        headers=world.headers(tenant),
    )
    assert refunded.status_code == 201, refunded.text
    secret = await new_secret(client, world, tenant=tenant)
    delivered = await send_callback(
        client,
        tenant=tenant,
        secret=secret,
        payload={"type": "shipment.delivered", "order_id": order.json()["id"]},
    )
    assert delivered.status_code == 200, delivered.text
    await seed_webhook_tables(client, world, database, tenant=tenant)
    from shelfkeeper.event import broker  # the NATS publisher's cursor, set as an operator would

    async with database.tenant_transaction(tenant) as db:
        await broker.put_cursor(db, tenant_id=tenant, stream="SEED", sequence=1)
    audited = await client.get(f"/api/v1/{tenant}/audit-log", headers=world.headers(tenant))
    assert audited.status_code == 200, audited.text
    assert audited.json()["data"], "the seed's changes are audited"
    # privacy: the first order created the tenant's data key (`tenant_data_key`); the
    # order's customer and the callback secret are sealed under it
    async with database.tenant_transaction(tenant) as db:
        keys = await db.fetch("SELECT version FROM tenant_data_key WHERE tenant_id = $1", tenant)
    assert [row["version"] for row in keys] == [1]


async def test_every_tenant_table_has_forced_rls_and_tenant_leading_keys(
    owner_connection: Connection,
) -> None:
    tables = await tenant_tables(owner_connection)
    all_tables = {
        row["relname"]
        for row in await owner_connection.fetch(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
        )
    }
    assert all_tables - set(tables) == PLATFORM_TABLES
    assert {"api_key", "idempotency_key", "location"} <= set(tables)

    for table in tables:
        flags = await owner_connection.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = $1 AND relnamespace = 'public'::regnamespace",
            table,
        )
        assert flags is not None
        assert (table, flags["relrowsecurity"], flags["relforcerowsecurity"]) == (table, True, True)
        policies = await owner_connection.fetch(
            "SELECT policyname, cmd, roles::text[] AS roles, qual, with_check FROM pg_policies "
            "WHERE schemaname = 'public' AND tablename = $1",
            table,
        )
        assert policies, f"{table} has no policy"
        for policy in policies:
            if policy["policyname"] == "pending_work_scan":
                # the one exception (migration 0015): read-only, for the owner's
                # SECURITY DEFINER functions, never for the service role or everyone
                assert policy["cmd"] == "SELECT", table
                assert not {"public", migrate.SERVICE_ROLE} & set(policy["roles"]), table
                continue
            assert "current_setting('app.tenant_id'" in policy["qual"], table
            assert "current_setting('app.tenant_id'" in policy["with_check"], table

        constraints = await owner_connection.fetch(
            """
            SELECT con.conname, con.contype::text AS contype,
                   array(SELECT att.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord)
                         JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.num
                         ORDER BY k.ord)::text[] AS columns
            FROM pg_constraint con
            WHERE con.conrelid = ('public.' || $1)::regclass AND con.contype IN ('p', 'u', 'f')
            """,
            table,
        )
        kinds = {row["contype"] for row in constraints}
        assert "p" in kinds, f"{table} has no primary key"
        for constraint in constraints:
            columns = list(constraint["columns"])
            if constraint["contype"] == "p":
                assert columns[0] == "tenant_id", (table, constraint["conname"], columns)
            else:
                assert "tenant_id" in columns, (table, constraint["conname"], columns)

        unique_indexes = await owner_connection.fetch(
            """
            SELECT i.indexrelid::regclass::text AS name,
                   array(SELECT att.attname FROM unnest(i.indkey) AS k(num)
                         JOIN pg_attribute att ON att.attrelid = i.indrelid AND att.attnum = k.num
                   )::text[] AS columns
            FROM pg_index i WHERE i.indrelid = ('public.' || $1)::regclass AND i.indisunique
            """,
            table,
        )
        for index in unique_indexes:
            assert "tenant_id" in index["columns"], (table, index["name"])


async def test_service_role_is_unprivileged(service_connection: Connection) -> None:
    role = await service_connection.fetchrow(
        "SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles "
        "WHERE rolname = current_user"
    )
    assert role is not None
    assert (role["name"], role["rolsuper"], role["rolbypassrls"]) == (
        migrate.SERVICE_ROLE,
        False,
        False,
    )
    owned = await service_connection.fetchval(
        "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner "
        "WHERE r.rolname = current_user"
    )
    assert owned == 0


async def test_pool_connections_run_as_the_service_role(client: httpx.AsyncClient, app) -> None:  # type: ignore[no-untyped-def]
    async with app.state.database.transaction() as db:
        assert await db.fetchval("SELECT current_user") == migrate.SERVICE_ROLE


async def test_cross_tenant_reads_updates_and_deletes_touch_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    service_connection: Connection,
) -> None:
    await seed_every_table(client, world, world.a)
    await seed_every_table(client, world, world.b)
    tables = await tenant_tables(owner_connection)
    for table in tables:
        seeded = await owner_connection.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", world.b
        )
        assert seeded >= 1, f"seed_every_table must give tenant B a row in {table}"

    for table in tables:
        transaction = service_connection.transaction()
        await transaction.start()
        try:
            await bind_tenant(service_connection, world.a)
            # a query that forgets its tenant filter sees only the bound tenant
            visible = await service_connection.fetch(f"SELECT DISTINCT tenant_id FROM {table}")
            assert [row["tenant_id"] for row in visible] == [world.a], table
            # explicitly naming the other tenant reaches nothing
            assert (
                await service_connection.fetchval(
                    f"SELECT count(*) FROM {table} WHERE tenant_id = $1", world.b
                )
                == 0
            ), table
            if table in APPEND_ONLY_TABLES:
                for statement in (
                    f"UPDATE {table} SET tenant_id = tenant_id",
                    f"DELETE FROM {table}",
                ):
                    savepoint = service_connection.transaction()
                    await savepoint.start()
                    with pytest.raises(asyncpg.InsufficientPrivilegeError):
                        await service_connection.execute(statement)
                    await savepoint.rollback()
                continue
            updated = await service_connection.execute(
                f"UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = $1", world.b
            )
            assert updated == "UPDATE 0", table
            deleted = await service_connection.execute(
                f"DELETE FROM {table} WHERE tenant_id = $1", world.b
            )
            assert deleted == "DELETE 0", table
            # moving a row of our own into the other tenant is refused by the policy's check
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await service_connection.execute(
                    f"UPDATE {table} SET tenant_id = $1 WHERE tenant_id = $2", world.b, world.a
                )
        finally:
            await transaction.rollback()

    for table in tables:
        remaining = await owner_connection.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1", world.b
        )
        assert remaining >= 1, table


async def test_unbound_transaction_sees_and_writes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    service_connection: Connection,
) -> None:
    await seed_every_table(client, world, world.a)
    for table in await tenant_tables(owner_connection):
        assert await service_connection.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        if table in APPEND_ONLY_TABLES:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await service_connection.execute(f"DELETE FROM {table}")
            continue
        deleted = await service_connection.execute(f"DELETE FROM {table}")
        assert deleted == "DELETE 0", table
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await service_connection.execute(
            "INSERT INTO location (tenant_id, code, name, kind, created_by, updated_by) "
            "VALUES ($1, 'X', 'x', 'store', 'test', 'test')",
            world.a,
        )


async def test_tenant_binding_ends_with_the_transaction(
    client: httpx.AsyncClient,
    world: TenantWorld,
    service_connection: Connection,
) -> None:
    await seed_every_table(client, world, world.a)
    async with service_connection.transaction():
        await bind_tenant(service_connection, world.a)
        assert await service_connection.fetchval("SELECT count(*) FROM location") == 1
    assert await service_connection.fetchval("SELECT count(*) FROM location") == 0


async def test_inserting_a_row_for_another_tenant_is_refused(
    world: TenantWorld, service_connection: Connection
) -> None:
    async with service_connection.transaction():
        await bind_tenant(service_connection, world.a)
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service_connection.execute(
                "INSERT INTO location (tenant_id, code, name, kind, created_by, updated_by) "
                "VALUES ($1, 'X', 'x', 'store', 'test', 'test')",
                world.b,
            )


async def test_platform_scoped_tables_are_visible_only_in_the_platform_scope_and_append_only(
    world: TenantWorld, owner_connection: Connection, service_connection: Connection
) -> None:
    for table in PLATFORM_SCOPED_TABLES:
        flags = await owner_connection.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relname = $1 AND relnamespace = 'public'::regnamespace",
            table,
        )
        assert flags is not None
        assert (table, flags["relrowsecurity"], flags["relforcerowsecurity"]) == (table, True, True)
        policies = await owner_connection.fetch(
            "SELECT qual, with_check FROM pg_policies WHERE schemaname = 'public' "
            "AND tablename = $1",
            table,
        )
        assert len(policies) == 1, table
        for policy in policies:
            for clause in (policy["qual"], policy["with_check"]):
                assert "current_setting('app.tenant_id'" in clause, table
                assert f"'{PLATFORM_SCOPE}'" in clause, table
        granted = await owner_connection.fetch(
            "SELECT privilege_type FROM information_schema.role_table_grants "
            "WHERE table_name = $1 AND grantee = $2 ORDER BY privilege_type",
            table,
            migrate.SERVICE_ROLE,
        )
        assert [row["privilege_type"] for row in granted] == ["INSERT", "SELECT"], table

    marker = f"scope-{world.a}"
    insert = (
        "INSERT INTO platform_audit_entry (target_tenant_id, actor, action, entity_type) "
        "VALUES ($1, $2, 'test', 'tenant')"
    )
    async with service_connection.transaction():
        await bind_tenant(service_connection, PLATFORM_SCOPE)
        await service_connection.execute(insert, world.a, marker)
    for binding in (world.a, None):
        transaction = service_connection.transaction()
        await transaction.start()
        try:
            if binding is not None:
                await bind_tenant(service_connection, binding)
            assert (
                await service_connection.fetchval("SELECT count(*) FROM platform_audit_entry") == 0
            ), binding
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await service_connection.execute(insert, world.a, marker)
        finally:
            await transaction.rollback()
    for statement in (
        "UPDATE platform_audit_entry SET action = 'nothing' WHERE actor = $1",
        "DELETE FROM platform_audit_entry WHERE actor = $1",
    ):
        transaction = service_connection.transaction()
        await transaction.start()
        try:
            await bind_tenant(service_connection, PLATFORM_SCOPE)
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await service_connection.execute(statement, marker)
        finally:
            await transaction.rollback()
    rows = await owner_connection.fetch(
        "SELECT target_tenant_id, action FROM platform_audit_entry WHERE actor = $1", marker
    )
    assert [(row["target_tenant_id"], row["action"]) for row in rows] == [(world.a, "test")]
