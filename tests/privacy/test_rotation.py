"""Key rotation: a tenant's data key rotated while orders are placed (every value re-sealed,
the old key deleted, everything readable), a transaction that read the old key waited for,
every sealed column found by the catalog walk; master-key rewrap; status and prune."""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database
from shelfkeeper.privacy import crypto, repository, rotation
from shelfkeeper.privacy import service as privacy_service
from shelfkeeper.privacy.keystore import DirectoryKeyStore
from tests.conftest import TenantWorld
from tests.event.webhook_receiver import create_webhook
from tests.order.after_sale import new_secret, towel_world
from tests.order.factories import order_body, orders_url, read_order
from tests.test_cli import cli_environment, run_cli

SOURCE = Path(__file__).parents[2] / "src" / "shelfkeeper"


async def sealed_versions(owner: Connection, *, tenant: str) -> dict[str, set[int]]:
    """For each sealed field of the tenant, the key versions its values name (raw SQL as
    the owner, over every bytea column the catalog walk finds)."""
    columns = await repository.bytea_columns(owner)
    found: dict[str, set[int]] = {}
    for column in columns:
        values = await owner.fetch(
            f'SELECT "{column.column}" AS value FROM "{column.table}" WHERE tenant_id = $1',
            tenant,
        )
        for row in values:
            if row["value"] is not None and crypto.is_sealed(row["value"]):
                found.setdefault(column.field, set()).add(crypto.key_version(row["value"]))
    return found


async def place(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, variant: str, n: int
) -> httpx.Response:
    return await client.post(
        orders_url(tenant),
        json=order_body(
            lines=[{"variant_id": variant, "quantity": 1, "unit_price": "1.00"}],
            customer={"email": f"c{n}@example.com", "name": f"Customer {n}"},
            shipping_address={"line1": f"{n} Harbor Lane", "country": "US"},
        ),
        headers=world.headers(tenant) | {"Idempotency-Key": f"order-{n}"},
    )


async def test_rotation_while_orders_are_placed_reseals_everything_and_drops_the_old_key(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    tenant = world.a
    _, variant = await towel_world(client, world, tenant=tenant, on_hand=1000)
    before = [await place(client, world, tenant=tenant, variant=variant, n=n) for n in range(30)]
    await new_secret(client, world, tenant=tenant)
    await create_webhook(client, world, tenant=tenant, url="https://hooks.example.com/in")
    versions_before = await sealed_versions(owner_connection, tenant=tenant)
    rotating = asyncio.create_task(
        rotation.rotate_data_key(database, tenant_id=tenant, batch_size=7)
    )
    during: list[httpx.Response] = []
    n = 100
    while not rotating.done():  # concurrent writers until the rotation ends
        placed = await asyncio.gather(
            *(place(client, world, tenant=tenant, variant=variant, n=n + i) for i in range(3))
        )
        during.extend(placed)
        n += 3
    done = await rotating
    after = await sealed_versions(owner_connection, tenant=tenant)
    key_versions = await owner_connection.fetch(
        "SELECT version, scheme FROM tenant_data_key WHERE tenant_id = $1", tenant
    )
    orders = [*before, *during]
    read = [
        await read_order(client, world, tenant=tenant, order_id=order.json()["id"])
        for order in orders
    ]
    replayed = await place(client, world, tenant=tenant, variant=variant, n=0)

    assert all(order.status_code == 201 for order in orders), [o.text for o in orders][:3]
    assert len(during) >= 3
    assert versions_before == {
        "idempotency_key.response_body": {1},
        "integration_secret.secret": {1},
        "sales_order.customer": {1},
        "sales_order.shipping_address": {1},
        "webhook_endpoint.secret": {1},
    }
    assert done.version == 2
    assert done.deleted_versions == [1]
    assert set(done.resealed) == set(versions_before)
    assert done.resealed["sales_order.customer"] >= 30
    assert after == {field: {2} for field in versions_before}
    assert [(row["version"], row["scheme"]) for row in key_versions] == [(2, 2)]
    for order, opened in zip(orders, read, strict=True):
        number = opened["customer"]["email"].removeprefix("c").removesuffix("@example.com")
        assert opened["id"] == order.json()["id"]
        assert opened["customer"]["name"] == f"Customer {number}"
        assert opened["shipping_address"]["line1"] == f"{number} Harbor Lane"
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == before[0].json()


async def test_a_transaction_that_read_the_old_key_is_waited_for_and_its_value_resealed(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    tenant = world.a
    _, variant = await towel_world(client, world, tenant=tenant)
    order_id = (await place(client, world, tenant=tenant, variant=variant, n=1)).json()["id"]

    async with database.tenant_transaction(tenant) as db:
        sealer = await privacy_service.sealer(db, tenant_id=tenant)  # reads key 1, no write
        rotating = asyncio.create_task(rotation.rotate_data_key(database, tenant_id=tenant))
        await asyncio.sleep(1.0)
        waiting = not rotating.done()
        new_key_visible = await owner_connection.fetchval(
            "SELECT max(version) FROM tenant_data_key WHERE tenant_id = $1", tenant
        )
        # only now does it write, a value sealed under the key it read
        await db.execute(
            "UPDATE sales_order SET customer = $1 WHERE tenant_id = $2 AND id = $3::uuid",
            sealer.seal_json("sales_order.customer", {"email": "late@example.com"}),
            tenant,
            order_id,
        )
    done = await asyncio.wait_for(rotating, timeout=30)
    read = await read_order(client, world, tenant=tenant, order_id=order_id)

    assert sealer.version == 1
    assert waiting
    assert new_key_visible == 2
    assert done.deleted_versions == [1]
    assert done.resealed["sales_order.customer"] == 1
    assert read["customer"]["email"] == "late@example.com"


async def test_a_value_that_does_not_open_stops_the_rotation_before_any_key_is_deleted(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    tenant = world.a
    _, variant = await towel_world(client, world, tenant=tenant)
    order_id = (await place(client, world, tenant=tenant, variant=variant, n=1)).json()["id"]
    async with database.tenant_transaction(tenant) as db:
        sealed = (await privacy_service.sealer(db, tenant_id=tenant)).seal_json(
            "sales_order.shipping_address", {"line1": "moved from another column"}
        )
        await db.execute(
            "UPDATE sales_order SET customer = $1 WHERE tenant_id = $2 AND id = $3::uuid",
            sealed,
            tenant,
            order_id,
        )

    with pytest.raises(rotation.RotationIncomplete, match=r"sales_order\.customer"):
        await rotation.rotate_data_key(database, tenant_id=tenant)
    versions = await owner_connection.fetch(
        "SELECT version FROM tenant_data_key WHERE tenant_id = $1 ORDER BY version", tenant
    )

    assert [row["version"] for row in versions] == [1, 2]


async def test_a_tenant_without_a_key_has_nothing_to_rotate(
    world: TenantWorld, database: Database
) -> None:
    done = await rotation.rotate_data_key(database, tenant_id=world.b)

    assert (done.version, done.resealed, done.deleted_versions) == (None, {}, [])


def sealed_fields_in_source() -> set[str]:
    """The field of every `seal_json`/`seal_bytes` call in the source: a literal, or a
    constant of the calling module (`FIELD`, `module.FIELD`). Only the privacy package (the
    sealer, the re-sealer) may pass a field it was given; anywhere else a field this test
    cannot read fails it."""
    fields: set[str] = set()
    for path in SOURCE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        module = ".".join(path.relative_to(SOURCE.parent).with_suffix("").parts)
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("seal_json", "seal_bytes")
                and node.args
            ):
                continue
            argument = node.args[0]
            if isinstance(argument, ast.Constant):
                fields.add(str(argument.value))
                continue
            root = argument
            while isinstance(root, ast.Attribute):
                root = root.value
            namespace = vars(importlib.import_module(module))
            if isinstance(root, ast.Name) and root.id in namespace:
                expression = ast.Expression(argument)
                fields.add(str(eval(compile(expression, str(path), "eval"), namespace)))
            elif not module.startswith("shelfkeeper.privacy."):
                raise AssertionError(f"{path}:{node.lineno}: a sealed field the test cannot read")
    return fields


async def test_the_catalog_walk_finds_every_column_the_code_seals(
    owner_connection: Connection,
) -> None:
    walked = {column.field for column in await repository.bytea_columns(owner_connection)}
    sealed = sealed_fields_in_source()

    assert sealed >= {
        "sales_order.customer",
        "sales_order.shipping_address",
        "integration_secret.secret",
        "webhook_endpoint.secret",
        "idempotency_key.response_body",
    }
    assert sealed - walked == set()
    assert "tenant_data_key.wrapped_key" not in walked


async def test_rewrap_moves_keys_to_the_new_master_and_a_share(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keystore = tmp_path / "keystore"
    old = Settings(data_dir=tmp_path / "old", master_key="old-master-key", keystore_dir=keystore)
    new = Settings(
        data_dir=tmp_path / "new",
        master_key="new-master-key",
        retired_master_keys="old-master-key",
        keystore_dir=keystore,
    )
    monkeypatch.setattr(privacy_service, "_masters", privacy_service._MasterKeys())
    privacy_service.use_master_key(old)
    # tenant a: a scheme-2 key under the old master; tenant b: a scheme-1 key (as keys
    # created before key shares are), both sealing a value
    async with database.tenant_transaction(world.a) as db:
        sealed_a = (await privacy_service.sealer(db, tenant_id=world.a)).seal_json(
            "sales_order.customer", {"name": "A"}
        )
    data_key = crypto.new_data_key()
    async with database.tenant_transaction(world.b) as db:
        await repository.insert_key(
            db,
            tenant_id=world.b,
            version=1,
            wrapped_key=crypto.wrap(
                b"old-master-key", tenant_id=world.b, version=1, data_key=data_key
            ),
            master_key=crypto.fingerprint(b"old-master-key"),
            scheme=crypto.MASTER_ONLY,
        )
        sealed_b = (await privacy_service.sealer(db, tenant_id=world.b)).seal_json(
            "sales_order.customer", {"name": "B"}
        )
    privacy_service.use_master_key(new)
    status_before = await rotation.status(database)
    done = [await rotation.rewrap(database, tenant_id=tenant) for tenant in (world.a, world.b)]
    again = [await rotation.rewrap(database, tenant_id=tenant) for tenant in (world.a, world.b)]
    rows = await owner_connection.fetch(
        "SELECT tenant_id, master_key, scheme FROM tenant_data_key "
        "WHERE tenant_id = ANY($1::text[]) ORDER BY tenant_id",
        [world.a, world.b],
    )
    # a process that knows only the new master key (no retired one) opens both
    monkeypatch.setattr(privacy_service, "_masters", privacy_service._MasterKeys())
    monkeypatch.setattr(privacy_service, "_data_keys", {})
    monkeypatch.setattr(privacy_service, "_shares", {})
    privacy_service.use_master_key(
        Settings(data_dir=tmp_path / "new", master_key="new-master-key", keystore_dir=keystore)
    )
    opened = []
    for tenant, sealed in ((world.a, sealed_a), (world.b, sealed_b)):
        async with database.tenant_transaction(tenant) as db:
            opened.append(
                await privacy_service.open_json(
                    db, tenant_id=tenant, field="sales_order.customer", sealed=sealed
                )
            )
    status_after = await rotation.status(database)

    old_print, new_print = (
        crypto.fingerprint(b"old-master-key"),
        crypto.fingerprint(b"new-master-key"),
    )
    assert status_before["current_master_key"] == new_print
    assert status_before["retired_master_keys"] == [old_print]
    assert {"master_key": old_print, "master_key_role": "retired", "scheme": 1, "keys": 1} in (
        status_before["data_keys"]
    )
    assert {"master_key": old_print, "master_key_role": "retired", "scheme": 2, "keys": 1} in (
        status_before["data_keys"]
    )
    assert world.b in status_before["tenants_without_share"]
    assert world.a not in status_before["tenants_without_share"]
    assert [(each.tenant_id, each.rewrapped) for each in done] == [(world.a, 1), (world.b, 1)]
    assert [each.rewrapped for each in again] == [0, 0]
    assert [(row["master_key"], row["scheme"]) for row in rows] == [(new_print, 2)] * 2
    assert DirectoryKeyStore(keystore).get(world.b) is not None
    assert opened == [{"name": "A"}, {"name": "B"}]
    assert world.b not in status_after["tenants_without_share"]
    assert not any(entry["master_key"] == old_print for entry in status_after["data_keys"])


async def platform_actions(database_url: str, tenant_id: str) -> list[tuple[str, str, Any]]:
    """The platform trail's entries about `tenant_id` (entity, action, after), oldest first."""
    owner = await asyncpg.connect(database_url)
    try:
        rows = await owner.fetch(
            "SELECT entity_type, action, after FROM platform_audit_entry"
            " WHERE target_tenant_id = $1 ORDER BY occurred_at, id",
            tenant_id,
        )
    finally:
        await owner.close()
    return [
        (row["entity_type"], row["action"], json.loads(row["after"]) if row["after"] else None)
        for row in rows
    ]


async def test_keys_status_and_prune_on_the_command_line(
    database_url: str, settings: Settings, tmp_path: Path
) -> None:
    store = DirectoryKeyStore(tmp_path / "keystore")
    store.create("ghost-tenant-that-never-was")
    env = cli_environment(
        tmp_path,
        DATABASE_URL=database_url,
        SHELFKEEPER_MASTER_KEY=settings.master_key_bytes.decode(),
    )

    status = run_cli("keys", "status", env=env)
    pruned = run_cli("keys", "prune", env=env)
    pruned_again = run_cli("keys", "prune", env=env)
    refused = run_cli("keys", "rotate-data-key", env=env)

    assert status.returncode == 0, status.stderr
    report: dict[str, Any] = json.loads(status.stdout)
    assert report["shares_without_tenant"] == ["ghost-tenant-that-never-was"]
    assert report["current_master_key"] == crypto.fingerprint(settings.master_key_bytes)
    assert pruned.returncode == 0, pruned.stderr
    assert json.loads(pruned.stdout) == {"pruned": ["ghost-tenant-that-never-was"]}
    assert json.loads(pruned_again.stdout) == {"pruned": []}
    assert store.list() == []
    assert await platform_actions(database_url, "ghost-tenant-that-never-was") == [
        ("data_key", "prune_share", {"share_destroyed": True})
    ]
    assert refused.returncode == 2
    assert "give --tenant ID or --all" in refused.stderr


async def test_keys_rotate_data_key_on_the_command_line(
    database_url: str, settings: Settings, tmp_path: Path
) -> None:
    env = cli_environment(
        tmp_path,
        DATABASE_URL=database_url,
        SHELFKEEPER_MASTER_KEY=settings.master_key_bytes.decode(),
        SHELFKEEPER_KEYSTORE_DIR=str(settings.keystore_path),
    )
    created = run_cli("tenants", "create", "rotate-cli-tenant", "--name", "R", env=env)
    first = run_cli("keys", "rotate-data-key", "--tenant", "rotate-cli-tenant", env=env)
    missing = run_cli("keys", "rotate-data-key", "--tenant", "no-such-tenant", env=env)

    assert created.returncode == 0, created.stderr
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) == {
        "tenant": "rotate-cli-tenant",
        "version": None,
        "resealed": {},
        "deleted_versions": [],
    }
    assert missing.returncode == 2
    assert "no tenant `no-such-tenant`" in missing.stderr
    assert (await platform_actions(database_url, "rotate-cli-tenant"))[-1] == (
        "data_key",
        "rotate_data_key",
        {"version": None, "values_resealed": 0, "deleted_versions": []},
    )
