"""The platform trail: every platform operation (the tenant lifecycle through the API, the
export, the command line's `tenants create` and `demo`) leaves one append-only entry,
written in the operation's transaction, readable by platform operators at
`/api/v1/tenants/{tenantId}/audit-log`, also after the tenant is gone."""

from __future__ import annotations

import getpass
import json
import uuid
from typing import Any

import httpx
import pytest

from shelfkeeper.audit import service as audit_service
from shelfkeeper.config import Settings
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate
from tests.audit.factories import entries as tenant_entries
from tests.conftest import TenantWorld, new_tenant_id
from tests.db.test_tenancy import seed_every_table
from tests.kit.assertions import assert_problem
from tests.tenant.factories import TENANTS_URL, create_tenant_through_api, tenant_url
from tests.test_cli import cli_environment, run_cli
from tests.test_demo import demo_environment

UNSET = {
    "settings.rate_limit": None,
    "settings.low_stock_threshold": None,
    "settings.unpaid_order_expiry_minutes": None,
}


def platform_audit_url(tenant: str) -> str:
    return f"{tenant_url(tenant)}/audit-log"


async def platform_entries(owner: Connection, *, tenant: str) -> list[dict[str, Any]]:
    """Every platform entry about `tenant`, oldest first, as the database owner sees them."""
    rows = await owner.fetch(
        "SELECT * FROM platform_audit_entry WHERE target_tenant_id = $1 ORDER BY occurred_at, id",
        tenant,
    )
    return [dict(row) for row in rows]


async def platform_log(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, **params: Any
) -> dict[str, Any]:
    response = await client.get(platform_audit_url(tenant), params=params, headers=world.platform)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


# --- the API's platform operations ------------------------------------------------------------


async def test_creating_a_tenant_is_recorded_with_who_and_from_where(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    tenant = new_tenant_id()

    created = await client.post(
        TENANTS_URL,
        json={"id": tenant, "name": "Acme", "settings": {"low_stock_threshold": 3}},
        headers=world.platform | {"X-Request-ID": "platform-create-1"},
    )

    assert created.status_code == 201, created.text
    [entry] = await platform_entries(owner_connection, tenant=tenant)
    assert {key: entry[key] for key in entry if key not in ("id", "occurred_at")} == {
        "target_tenant_id": tenant,
        "actor": "user:tester",
        "role": "platform_admin",
        "action": "create",
        "entity_type": "tenant",
        "entity_id": tenant,
        "before": None,
        "after": {
            "name": "Acme",
            "status": "active",
            **UNSET,
            "settings.low_stock_threshold": 3,
        },
        "request_id": "platform-create-1",
        "client_address": "127.0.0.1",
    }


async def test_updates_suspension_and_reactivation_keep_only_what_changed(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    tenant = (await create_tenant_through_api(client, world, name="Acme"))["id"]
    url = tenant_url(tenant)

    for body in (
        {"settings": {"rate_limit": {"requests_per_second": 5, "burst": 10}}},
        {"name": "Acme Home"},
        {"status": "suspended"},
        {"status": "active", "name": "Acme Homes"},
        {"settings": {"rate_limit": None}},
    ):
        response = await client.patch(url, json=body, headers=world.platform)
        assert response.status_code == 200, response.text

    trail = await platform_entries(owner_connection, tenant=tenant)
    assert [(entry["action"], entry["before"], entry["after"]) for entry in trail[1:]] == [
        (
            "update",
            {"settings.rate_limit": None},
            {"settings.rate_limit": {"requests_per_second": 5, "burst": 10}},
        ),
        ("update", {"name": "Acme"}, {"name": "Acme Home"}),
        ("suspend", {"status": "active"}, {"status": "suspended"}),
        (
            "reactivate",
            {"name": "Acme Home", "status": "suspended"},
            {"name": "Acme Homes", "status": "active"},
        ),
        (
            "update",
            {"settings.rate_limit": {"requests_per_second": 5, "burst": 10}},
            {"settings.rate_limit": None},
        ),
    ]
    assert trail[0]["action"] == "create"
    assert {entry["entity_id"] for entry in trail} == {tenant}


async def test_deleting_a_tenant_records_the_rows_and_keys_that_went_and_outlives_it(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await seed_every_table(client, world, world.a)
    tables = await owner_connection.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
        "AND a.attname = 'tenant_id' WHERE c.relnamespace = 'public'::regnamespace "
        "AND c.relkind = 'r' ORDER BY c.relname"
    )
    counts = {
        row["relname"]: await owner_connection.fetchval(
            f'SELECT count(*) FROM "{row["relname"]}" WHERE tenant_id = $1', world.a
        )
        for row in tables
    }
    assert await tenant_entries(owner_connection, tenant=world.a), "the tenant's own trail"

    deleted = await client.delete(
        tenant_url(world.a), headers=world.platform | {"X-Request-ID": "offboard-1"}
    )

    assert deleted.status_code == 204, deleted.text
    [entry] = await platform_entries(owner_connection, tenant=world.a)
    assert (entry["action"], entry["entity_id"], entry["request_id"]) == (
        "delete",
        world.a,
        "offboard-1",
    )
    assert entry["before"] == {"name": f"Tenant {world.a}", "status": "active"}
    assert entry["after"] == {
        "rows_deleted": sum(counts.values()),
        "rows_deleted_per_table": [
            {"table": table, "rows": rows} for table, rows in counts.items() if rows
        ],
        "data_keys_destroyed": 1,
    }
    assert counts["tenant_data_key"] == 1
    assert counts["api_key"] >= 1
    # the tenant's own trail went with it; the platform's stays readable
    assert await tenant_entries(owner_connection, tenant=world.a) == []
    page = await platform_log(client, world, tenant=world.a)
    assert [row["action"] for row in page["data"]] == ["delete"]
    assert page["data"][0]["tenant_id"] == world.a
    assert page["data"][0]["after"]["data_keys_destroyed"] == 1


async def test_an_export_is_recorded_before_it_streams(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    json_export = await client.get(
        f"{tenant_url(world.a)}/export", headers=world.platform | {"X-Request-ID": "export-1"}
    )
    ndjson_export = await client.get(
        f"{tenant_url(world.a)}/export", params={"format": "ndjson"}, headers=world.platform
    )

    assert (json_export.status_code, ndjson_export.status_code) == (200, 200)
    trail = await platform_entries(owner_connection, tenant=world.a)
    assert [(entry["action"], entry["after"]) for entry in trail] == [
        ("export", {"format": "json"}),
        ("export", {"format": "ndjson"}),
    ]
    assert (trail[0]["request_id"], trail[0]["actor"], trail[0]["before"]) == (
        "export-1",
        "user:tester",
        None,
    )
    # the tenant's own trail holds nothing of it
    assert await tenant_entries(owner_connection, tenant=world.a) == []


async def test_refused_and_failed_platform_requests_write_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    tenant = new_tenant_id()
    admin = world.headers(world.a)

    responses = [
        (await client.post(TENANTS_URL, json={"id": tenant, "name": "x"}), 401),
        (await client.post(TENANTS_URL, json={"id": tenant, "name": "x"}, headers=admin), 403),
        (
            await client.post(
                TENANTS_URL, json={"id": world.a, "name": "x"}, headers=world.platform
            ),
            409,
        ),
        (
            await client.patch(
                tenant_url(world.a),
                json={"status": "suspended"},
                headers=world.platform | {"If-Match": '"7"'},
            ),
            412,
        ),
        (
            await client.patch(
                tenant_url(new_tenant_id()), json={"name": "y"}, headers=world.platform
            ),
            404,
        ),
        (await client.delete(tenant_url(world.a), headers=admin), 403),
        (await client.get(f"{tenant_url(world.a)}/export", headers=admin), 403),
        (await client.get(f"{tenant_url(new_tenant_id())}/export", headers=world.platform), 404),
    ]

    assert [response.status_code for response, _ in responses] == [
        status for _, status in responses
    ]
    assert await platform_entries(owner_connection, tenant=tenant) == []
    assert await platform_entries(owner_connection, tenant=world.a) == []
    assert await owner_connection.fetchval("SELECT count(*) FROM tenant WHERE id = $1", tenant) == 0


async def test_an_idempotent_replay_writes_no_second_entry(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    body = {"id": new_tenant_id(), "name": "Once"}
    headers = world.platform | {"Idempotency-Key": f"create-{uuid.uuid4()}"}

    first = await client.post(TENANTS_URL, json=body, headers=headers)
    second = await client.post(TENANTS_URL, json=body, headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert len(await platform_entries(owner_connection, tenant=body["id"])) == 1


async def test_platform_entries_are_redacted_like_a_tenant_s(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    renamed = await client.patch(
        tenant_url(world.a),
        json={"name": "Contact ops@example.com, key sk_live_abcdefghijklmnop1234"},
        headers=world.platform,
    )

    assert renamed.status_code == 200, renamed.text
    [entry] = await platform_entries(owner_connection, tenant=world.a)
    stored = json.dumps(entry["after"])
    assert "ops@example.com" not in stored
    assert "sk_live_abcdefghijklmnop1234" not in stored
    assert entry["after"]["name"] == audit_service.redact(renamed.json()["name"])
    assert "[REDACTED]" in entry["after"]["name"]


# --- reading the platform trail ----------------------------------------------------------------


async def test_reading_pages_and_filters_like_the_tenant_trail(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    url = tenant_url(world.a)
    for name in ("one", "two", "three", "four"):
        response = await client.patch(url, json={"name": name}, headers=world.platform)
        assert response.status_code == 200, response.text
    other = world.token(None, "platform_admin", subject="other-operator")
    exported = await client.get(f"{url}/export", headers={"Authorization": f"Bearer {other}"})
    assert exported.status_code == 200

    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await platform_log(client, world, tenant=world.a, **params)
        seen.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    by_other = await platform_log(client, world, tenant=world.a, actor="user:other-operator")
    later = await platform_log(client, world, tenant=world.a, after=seen[2]["occurred_at"])
    by_type = await platform_log(client, world, tenant=world.a, entity_type="order")
    bad_after = await client.get(
        platform_audit_url(world.a), params={"after": "12"}, headers=world.platform
    )

    assert [entry["action"] for entry in seen] == ["export", *["update"] * 4]
    assert [entry["after"].get("name") for entry in seen[1:]] == ["four", "three", "two", "one"]
    assert len({entry["id"] for entry in seen}) == 5
    assert {entry["tenant_id"] for entry in seen} == {world.a}
    assert [entry["action"] for entry in by_other["data"]] == ["export"]
    assert [entry["id"] for entry in later["data"]] == [seen[0]["id"], seen[1]["id"]]
    assert by_type["data"] == []
    assert_problem(bad_after, status=422, slug="validation-error")
    # another tenant's platform entries are not mixed in
    assert await platform_log(client, world, tenant=world.b) == {"data": [], "next_cursor": None}


@pytest.mark.parametrize("role", ["admin", "clerk", "viewer"])
async def test_only_platform_operators_read_the_platform_trail(
    client: httpx.AsyncClient, world: TenantWorld, role: str
) -> None:
    responses = [
        await client.get(platform_audit_url(world.a), headers=world.headers(world.a, role)),
        await client.get(platform_audit_url(world.a), headers=world.headers(world.b, role)),
    ]
    anonymous = await client.get(platform_audit_url(world.a))

    for response in responses:
        assert_problem(response, status=403, slug="forbidden")
    assert_problem(anonymous, status=401, slug="unauthorized")


async def test_a_tenant_bound_transaction_sees_no_platform_entry(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    renamed = await client.patch(tenant_url(world.a), json={"name": "x"}, headers=world.platform)
    assert renamed.status_code == 200

    async with database.tenant_transaction(world.a) as db:
        in_tenant = await db.fetchval("SELECT count(*) FROM platform_audit_entry")
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        in_platform = await db.fetchval(
            "SELECT count(*) FROM platform_audit_entry WHERE target_tenant_id = $1", world.a
        )

    assert (in_tenant, in_platform) == (0, 1)


async def test_the_platform_route_is_not_a_tenant_route_of_a_tenant_named_tenants(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    """`/api/v1/tenants/...` is the platform's: `tenants` is no tenant id (reserved), and
    even a `tenants` tenant put in the database behind the API's back gets no tenant
    route there: its admin reaches only platform routes, which refuse it."""
    refused = await client.post(
        TENANTS_URL, json={"id": "tenants", "name": "Sneaky"}, headers=world.platform
    )
    await owner_connection.execute(
        "INSERT INTO tenant (id, name) VALUES ('tenants', 'Sneaky') ON CONFLICT DO NOTHING"
    )
    try:
        sneaky = world.headers("tenants")
        as_tenant_trail = await client.get("/api/v1/tenants/audit-log", headers=sneaky)
        as_platform_trail = await client.get("/api/v1/tenants/tenants/audit-log", headers=sneaky)
        platform_reads = await client.get(platform_audit_url("tenants"), headers=world.platform)
        platform_reads_a = await client.get(platform_audit_url(world.a), headers=world.platform)
        own_trail = await client.get(f"/api/v1/{world.a}/audit-log", headers=world.headers(world.a))
    finally:
        await owner_connection.execute("DELETE FROM tenant WHERE id = 'tenants'")

    assert refused.status_code == 422
    # `/tenants/audit-log` is the platform's "read tenant `audit-log`", not a tenant's trail
    assert as_tenant_trail.request.url.path == "/api/v1/tenants/audit-log"
    assert_problem(as_tenant_trail, status=403, slug="forbidden")
    assert_problem(as_platform_trail, status=403, slug="forbidden")
    assert platform_reads.status_code == 200
    assert platform_reads.json()["data"] == []
    assert platform_reads_a.status_code == 200
    assert own_trail.status_code == 200


# --- the command line -----------------------------------------------------------------------


async def test_cli_tenants_create_is_recorded_as_the_os_user(
    database_url: str, tmp_path: Any, owner_connection: Connection
) -> None:
    tenant = new_tenant_id()
    env = cli_environment(tmp_path, DATABASE_URL=database_url)

    created = run_cli("tenants", "create", tenant, "--name", "From the shell", env=env)
    again = run_cli("tenants", "create", tenant, "--name", "Twice", env=env)

    assert created.returncode == 0, created.stderr
    assert again.returncode == 1
    [entry] = await platform_entries(owner_connection, tenant=tenant)
    assert {key: entry[key] for key in entry if key not in ("id", "occurred_at")} == {
        "target_tenant_id": tenant,
        "actor": f"cli:{getpass.getuser()}",
        "role": "platform_admin",
        "action": "create",
        "entity_type": "tenant",
        "entity_id": tenant,
        "before": None,
        "after": {"name": "From the shell", "status": "active", **UNSET},
        "request_id": None,
        "client_address": None,
    }


async def test_cli_demo_is_recorded_in_the_platform_trail_and_the_tenant_s(
    settings: Settings, database_url: str, owner_connection: Connection
) -> None:
    tenant = f"demo-{uuid.uuid4().hex[:10]}"
    env = demo_environment(settings, database_url)

    loaded = run_cli("demo", "--tenant", tenant, env=env)
    refused = run_cli("demo", "--tenant", tenant, env=env)

    assert loaded.returncode == 0, loaded.stderr
    assert refused.returncode == 1
    summary = json.loads(loaded.stdout)
    actor = f"cli:{getpass.getuser()}"
    trail = await platform_entries(owner_connection, tenant=tenant)
    assert [(entry["action"], entry["actor"], entry["role"]) for entry in trail] == [
        ("create", actor, "platform_admin"),
        ("load_demo", actor, "platform_admin"),
    ]
    assert trail[1]["after"] == summary
    # the demo's data, in the tenant's own trail, by the same operator
    own = await tenant_entries(owner_connection, tenant=tenant)
    assert {entry["actor"] for entry in own} == {actor}
    kinds = [(entry["entity_type"], entry["action"]) for entry in own]
    assert kinds.count(("location", "create")) == 3
    assert kinds.count(("item", "create")) == 6
    assert kinds.count(("item", "adjust_stock")) == 14
    assert all("Dock Road" not in json.dumps(entry["after"]) for entry in own)


async def test_record_platform_operation_writes_from_any_binding_and_restores_it(
    database: Database, owner_connection: Connection
) -> None:
    tenant = new_tenant_id()

    async with audit_service.platform_transaction(database) as db:
        await tenant_service.create(db, body=TenantCreate(id=tenant, name="Keys"))
        await db.execute("SELECT set_config('app.tenant_id', $1, true)", tenant)
        await audit_service.record_platform_operation(
            db, tenant_id=tenant, action="rotate_data_key", after={"version": 2}
        )
        still_bound = await db.fetchval("SELECT current_setting('app.tenant_id', true)")

    assert still_bound == tenant
    trail = await platform_entries(owner_connection, tenant=tenant)
    assert [(entry["action"], entry["actor"], entry["after"]) for entry in trail] == [
        ("rotate_data_key", f"cli:{getpass.getuser()}", {"version": 2}),
        ("create", f"cli:{getpass.getuser()}", {"name": "Keys", "status": "active", **UNSET}),
    ]


async def test_a_platform_transaction_that_fails_leaves_neither_change_nor_entry(
    database: Database, owner_connection: Connection
) -> None:
    tenant = new_tenant_id()

    async def create_then_fail() -> None:
        async with audit_service.platform_transaction(database) as db:
            await tenant_service.create(db, body=TenantCreate(id=tenant, name="Gone"))
            raise RuntimeError("the operation failed after the change")

    with pytest.raises(RuntimeError, match="failed after the change"):
        await create_then_fail()

    assert await platform_entries(owner_connection, tenant=tenant) == []
    assert await owner_connection.fetchval("SELECT count(*) FROM tenant WHERE id = $1", tenant) == 0
