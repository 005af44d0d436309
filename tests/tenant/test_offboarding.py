"""Offboarding: `GET /tenants/{id}/export` streams everything a tenant owns; `DELETE
/tenants/{id}` removes every row of every tenant-owned table and destroys the data keys."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.privacy import service as privacy_service
from tests.conftest import TenantWorld, new_tenant_id
from tests.db.test_tenancy import seed_every_table, tenant_tables
from tests.tenant.factories import tenant_row, tenant_url

PROBLEMS = "https://shelfkeeper.dev/problems/"
NOT_EXPORTED = {"tenant_data_key", "idempotency_key"}


async def row_counts(owner: Connection, tenant: str) -> dict[str, int]:
    """The tenant's row count in every table that has a `tenant_id` (the catalogue's list)."""
    return {
        table: await owner.fetchval(f'SELECT count(*) FROM "{table}" WHERE tenant_id = $1', tenant)
        for table in await tenant_tables(owner)
    }


async def test_offboarding_removes_every_row_of_the_tenant_and_nothing_else(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await seed_every_table(client, world, world.a)
    await seed_every_table(client, world, world.b)
    before = await row_counts(owner_connection, world.a)
    other_before = await row_counts(owner_connection, world.b)

    deleted = await client.delete(tenant_url(world.a), headers=world.platform)

    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert [table for table, count in before.items() if count == 0] == []
    assert "tenant_data_key" in before
    assert "idempotency_key" in before
    after = await row_counts(owner_connection, world.a)
    assert after == dict.fromkeys(before, 0)
    assert await row_counts(owner_connection, world.b) == other_before
    assert await tenant_row(owner_connection, tenant_id=world.a) is None
    read = await client.get(tenant_url(world.a), headers=world.platform)
    again = await client.delete(tenant_url(world.a), headers=world.platform)
    assert (read.status_code, again.status_code) == (404, 404)
    # the tenant's own credentials lead nowhere now
    locations = await client.get(f"/api/v1/{world.a}/locations", headers=world.headers(world.a))
    assert locations.status_code == 404


async def test_offboarding_destroys_the_data_key_so_saved_ciphertexts_stay_closed(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database: Database,
    owner_connection: Connection,
) -> None:
    await seed_every_table(client, world, world.a)
    saved: bytes = await owner_connection.fetchval(
        "SELECT customer FROM sales_order WHERE tenant_id = $1 LIMIT 1", world.a
    )
    async with database.tenant_transaction(world.a) as db:
        readable = await privacy_service.open_json(
            db, tenant_id=world.a, field="sales_order.customer", sealed=saved
        )

    deleted = await client.delete(tenant_url(world.a), headers=world.platform)

    assert readable == {"email": "ada@example.com"}
    assert deleted.status_code == 204
    assert (world.a, 1) not in privacy_service._data_keys
    assert (
        await owner_connection.fetchval(
            "SELECT count(*) FROM tenant_data_key WHERE tenant_id = $1", world.a
        )
        == 0
    )
    # a copy of the ciphertext (a backup, say) no longer opens: its key is gone
    async with database.tenant_transaction(world.a) as db:
        with pytest.raises(privacy_service.DataKeyUnavailable):
            await privacy_service.open_json(
                db, tenant_id=world.a, field="sales_order.customer", sealed=saved
            )


@pytest.mark.parametrize("role", ["admin", "platform_admin"])
async def test_only_a_platform_operator_offboards_or_exports(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    await seed_every_table(client, world, world.a)
    before = await row_counts(owner_connection, world.a)
    # a tenant's token, even one claiming the platform role, is not a platform operator's
    headers = world.headers(world.a, role)

    refused = [
        await client.delete(tenant_url(world.a), headers=headers),
        await client.get(f"{tenant_url(world.a)}/export", headers=headers),
    ]
    anonymous = [
        await client.delete(tenant_url(world.a)),
        await client.get(f"{tenant_url(world.a)}/export"),
    ]

    assert [response.status_code for response in refused] == [403, 403]
    assert {response.json()["type"] for response in refused} == {PROBLEMS + "forbidden"}
    assert [response.status_code for response in anonymous] == [401, 401]
    assert await row_counts(owner_connection, world.a) == before


async def test_an_unknown_tenant_is_404(client: httpx.AsyncClient, world: TenantWorld) -> None:
    missing = new_tenant_id()

    deleted = await client.delete(tenant_url(missing), headers=world.platform)
    exported = await client.get(f"{tenant_url(missing)}/export", headers=world.platform)
    malformed = await client.get(f"{tenant_url('Not_A_Slug')}/export", headers=world.platform)

    assert (deleted.status_code, exported.status_code) == (404, 404)
    assert exported.headers["content-type"] == "application/problem+json"
    assert malformed.status_code == 422


async def test_the_json_export_holds_every_table_of_the_tenant_decrypted(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await seed_every_table(client, world, world.a)
    await seed_every_table(client, world, world.b)
    counts = await row_counts(owner_connection, world.a)
    privacy_service.forget(world.a)  # the key is read in the middle of the rows' cursor

    response = await client.get(f"{tenant_url(world.a)}/export", headers=world.platform)

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert f'filename="{world.a}.json"' in response.headers["content-disposition"]
    export: dict[str, Any] = response.json()
    assert export["tenant"]["id"] == world.a
    tables: dict[str, list[dict[str, Any]]] = export["tables"]
    assert {table: len(rows) for table, rows in tables.items()} == {
        table: count for table, count in counts.items() if table not in NOT_EXPORTED
    }
    assert {row["tenant_id"] for rows in tables.values() for row in rows} == {world.a}
    assert [order["customer"] for order in tables["sales_order"]] == [{"email": "ada@example.com"}]
    assert [secret["secret"] for secret in tables["integration_secret"]] == [None]
    assert [hook["secret"] for hook in tables["webhook_endpoint"]] == [None]
    assert world.b not in response.text


async def test_the_ndjson_export_has_one_row_per_line_the_tenant_first(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await seed_every_table(client, world, world.a)
    counts = await row_counts(owner_connection, world.a)

    by_accept = await client.get(
        f"{tenant_url(world.a)}/export",
        headers=world.platform | {"Accept": "application/x-ndjson"},
    )
    by_query = await client.get(
        f"{tenant_url(world.a)}/export", params={"format": "ndjson"}, headers=world.platform
    )

    assert by_accept.status_code == by_query.status_code == 200
    assert by_accept.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in by_accept.text.splitlines()]
    assert lines[0]["table"] == "tenant"
    assert lines[0]["row"]["id"] == world.a
    exported: dict[str, int] = {}
    for line in lines[1:]:
        assert set(line) == {"table", "row"}
        assert line["row"]["tenant_id"] == world.a
        exported[line["table"]] = exported.get(line["table"], 0) + 1
    assert exported == {
        table: count for table, count in counts.items() if table not in NOT_EXPORTED and count
    }
    assert len(by_query.text.splitlines()) == len(lines)
