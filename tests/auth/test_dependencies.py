"""Authorisation: the credential's tenant against the path, the tenant's state, the role.

Every refusal of a write is checked in the database (as its owner, seeing all tenants):
no API key, location or idempotency record was written.
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.auth.conftest import assert_problem, bearer, count_rows
from tests.conftest import TenantWorld

KEY_BODY = {"name": "scanner", "role": "clerk"}
LOCATION_BODY = {"code": "WH1", "name": "Warehouse", "kind": "warehouse"}


def api_keys(tenant_id: str) -> str:
    return f"/api/v1/{tenant_id}/api-keys"


def locations(tenant_id: str) -> str:
    return f"/api/v1/{tenant_id}/locations"


def with_idempotency_key(headers: dict[str, str]) -> dict[str, str]:
    return headers | {"Idempotency-Key": f"idem-{uuid.uuid4().hex}"}


async def assert_nothing_written(owner: Connection, *tenant_ids: str) -> None:
    for tenant_id in tenant_ids:
        for table in ("api_key", "location", "idempotency_key"):
            assert await count_rows(owner, table, tenant_id) == 0, (table, tenant_id)


async def create_key(
    client: httpx.AsyncClient, world: TenantWorld, tenant_id: str, role: str = "viewer"
) -> dict[str, str]:
    response = await client.post(
        api_keys(tenant_id),
        json={"name": f"{role} key", "role": role},
        headers=world.headers(tenant_id),
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


# --- platform and tenant credentials ---------------------------------------------------


async def test_platform_token_on_a_tenant_route_is_forbidden(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    read = await client.get(locations(world.a), headers=world.platform)
    write = await client.post(
        api_keys(world.a), json=KEY_BODY, headers=with_idempotency_key(world.platform)
    )

    assert_problem(read, 403, "forbidden")
    assert_problem(write, 403, "forbidden")
    await assert_nothing_written(owner_connection, world.a)


async def test_platform_token_reads_tenants(client: httpx.AsyncClient, world: TenantWorld) -> None:
    response = await client.get(f"/api/v1/tenants/{world.a}", headers=world.platform)

    assert response.status_code == 200, response.text
    assert response.json()["id"] == world.a


@pytest.mark.parametrize("role", ["admin", "clerk", "viewer"])
async def test_tenant_token_on_tenant_lifecycle_is_forbidden(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    # given
    new_id = f"t-{uuid.uuid4().hex[:12]}"

    # when
    listed = await client.get("/api/v1/tenants", headers=world.headers(world.a, role))
    read = await client.get(f"/api/v1/tenants/{world.a}", headers=world.headers(world.a, role))
    created = await client.post(
        "/api/v1/tenants",
        json={"id": new_id, "name": "Sneaky"},
        headers=with_idempotency_key(world.headers(world.a, role)),
    )

    # then
    assert_problem(listed, 403, "forbidden")
    assert_problem(read, 403, "forbidden")
    assert_problem(created, 403, "forbidden")
    assert await owner_connection.fetchval("SELECT count(*) FROM tenant WHERE id = $1", new_id) == 0


async def test_platform_role_with_a_tenant_claim_is_not_a_platform_operator(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    token = world.token(world.a, "platform_admin")

    response = await client.get("/api/v1/tenants", headers=bearer(token))

    assert_problem(response, 403, "forbidden")


async def test_tenant_api_key_on_tenant_lifecycle_is_forbidden(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    key = await create_key(client, world, world.a, role="admin")

    response = await client.get("/api/v1/tenants", headers=bearer(key["key"]))

    assert_problem(response, 403, "forbidden")


# --- tenant from the credential, checked against the path ------------------------------


@pytest.mark.parametrize("role", ["admin", "clerk", "viewer"])
async def test_token_of_tenant_a_on_tenant_b_is_a_tenant_mismatch(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    headers = world.headers(world.a, role)

    read = await client.get(locations(world.b), headers=headers)
    key = await client.post(api_keys(world.b), json=KEY_BODY, headers=with_idempotency_key(headers))
    location = await client.post(
        locations(world.b), json=LOCATION_BODY, headers=with_idempotency_key(headers)
    )

    body = assert_problem(read, 403, "tenant-mismatch")
    assert body["detail"] == f"This credential belongs to tenant `{world.a}`."
    assert_problem(key, 403, "tenant-mismatch")
    assert_problem(location, 403, "tenant-mismatch")
    await assert_nothing_written(owner_connection, world.a, world.b)


async def test_tenant_mismatch_comes_before_the_role_check(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    # a viewer of A asking for B's admin endpoint learns of the mismatch, not of its role
    response = await client.get(api_keys(world.b), headers=world.headers(world.a, "viewer"))

    assert_problem(response, 403, "tenant-mismatch")


async def test_token_of_a_tenant_that_does_not_exist_is_not_found(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    # given
    ghost = f"t-{uuid.uuid4().hex[:12]}"
    headers = world.headers(ghost, "admin")

    # when
    read = await client.get(locations(ghost), headers=headers)
    write = await client.post(api_keys(ghost), json=KEY_BODY, headers=with_idempotency_key(headers))

    # then
    assert_problem(read, 404, "not-found")
    assert_problem(write, 404, "not-found")
    await assert_nothing_written(owner_connection, ghost)


async def test_suspended_tenant_refuses_its_own_tokens(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    # given
    suspended = await client.patch(
        f"/api/v1/tenants/{world.a}", json={"status": "suspended"}, headers=world.platform
    )
    assert suspended.status_code == 200, suspended.text
    headers = world.headers(world.a, "admin")

    # when
    read = await client.get(locations(world.a), headers=headers)
    write = await client.post(
        api_keys(world.a), json=KEY_BODY, headers=with_idempotency_key(headers)
    )

    # then
    assert_problem(read, 403, "tenant-suspended")
    assert_problem(write, 403, "tenant-suspended")
    await assert_nothing_written(owner_connection, world.a)
    other = await client.get(locations(world.b), headers=world.headers(world.b, "viewer"))
    assert other.status_code == 200, other.text


# --- roles ----------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [("superuser",), ("ADMIN",), ()])
async def test_token_without_a_known_role_is_forbidden_even_to_read(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    roles: tuple[str, ...],
) -> None:
    headers = bearer(world.token(world.a, *roles))

    read = await client.get(locations(world.a), headers=headers)
    write = await client.post(
        api_keys(world.a), json=KEY_BODY, headers=with_idempotency_key(headers)
    )

    assert_problem(read, 403, "forbidden")
    assert_problem(write, 403, "forbidden")
    await assert_nothing_written(owner_connection, world.a)


async def test_unknown_role_beside_a_known_one_is_ignored(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    headers = bearer(world.token(world.a, "viewer", "superuser"))

    read = await client.get(locations(world.a), headers=headers)
    write = await client.post(api_keys(world.a), json=KEY_BODY, headers=headers)

    assert read.status_code == 200, read.text
    assert_problem(write, 403, "forbidden")


@pytest.mark.parametrize("role", ["admin", "clerk", "viewer"])
async def test_every_tenant_role_reads_locations(
    client: httpx.AsyncClient, world: TenantWorld, role: str
) -> None:
    response = await client.get(locations(world.a), headers=world.headers(world.a, role))

    assert response.status_code == 200, response.text


async def test_admin_creates_lists_and_revokes_api_keys(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = world.headers(world.a, "admin")

    created = await client.post(api_keys(world.a), json=KEY_BODY, headers=headers)
    listed = await client.get(api_keys(world.a), headers=headers)
    key_id = created.json()["id"]
    revoked = await client.delete(f"{api_keys(world.a)}/{key_id}", headers=headers)

    assert created.status_code == 201, created.text
    assert listed.status_code == 200, listed.text
    assert [key["id"] for key in listed.json()["data"]] == [key_id]
    assert revoked.status_code == 204, revoked.text
    row = await owner_connection.fetchrow(
        "SELECT tenant_id, revoked_at FROM api_key WHERE id = $1", uuid.UUID(key_id)
    )
    assert row is not None
    assert row["tenant_id"] == world.a
    assert row["revoked_at"] is not None


@pytest.mark.parametrize("role", ["clerk", "viewer"])
async def test_clerk_and_viewer_may_not_create_api_keys(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    response = await client.post(
        api_keys(world.a),
        json={"name": "escalate", "role": "admin"},
        headers=with_idempotency_key(world.headers(world.a, role)),
    )

    assert_problem(response, 403, "forbidden")
    await assert_nothing_written(owner_connection, world.a)


@pytest.mark.parametrize("role", ["clerk", "viewer"])
async def test_clerk_and_viewer_may_not_list_api_keys(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    await create_key(client, world, world.a)

    response = await client.get(api_keys(world.a), headers=world.headers(world.a, role))

    body = assert_problem(response, 403, "forbidden")
    assert "data" not in body
    assert await count_rows(owner_connection, "api_key", world.a) == 1


@pytest.mark.parametrize("role", ["clerk", "viewer"])
async def test_clerk_and_viewer_may_not_revoke_api_keys(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    # given
    key = await create_key(client, world, world.a)

    # when
    response = await client.delete(
        f"{api_keys(world.a)}/{key['id']}", headers=world.headers(world.a, role)
    )

    # then
    assert_problem(response, 403, "forbidden")
    assert await count_rows(owner_connection, "api_key", world.a) == 1
    assert (
        await owner_connection.fetchval(
            "SELECT count(*) FROM api_key WHERE tenant_id = $1 AND revoked_at IS NULL", world.a
        )
        == 1
    )
    still_works = await client.get(locations(world.a), headers=bearer(key["key"]))
    assert still_works.status_code == 200, still_works.text


@pytest.mark.parametrize("role", ["clerk", "viewer"])
async def test_clerk_and_viewer_may_not_create_locations(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    response = await client.post(
        locations(world.a),
        json=LOCATION_BODY,
        headers=with_idempotency_key(world.headers(world.a, role)),
    )

    assert_problem(response, 403, "forbidden")
    await assert_nothing_written(owner_connection, world.a)
