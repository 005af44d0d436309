"""`/api/v1/{tenantId}/api-keys`: keys shown once, stored hashed, authenticating with their
role, bound to their tenant, and dead once revoked."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.auth.conftest import assert_problem, assert_unauthorized, bearer, count_rows
from tests.conftest import TenantWorld

SECRET_LENGTH = 43
LOCATION_BODY = {"code": "WH1", "name": "Warehouse", "kind": "warehouse"}


def api_keys(tenant_id: str) -> str:
    return f"/api/v1/{tenant_id}/api-keys"


def locations(tenant_id: str) -> str:
    return f"/api/v1/{tenant_id}/locations"


async def create_key(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    tenant_id: str,
    *,
    role: str = "viewer",
    name: str = "scanner",
) -> dict[str, Any]:
    response = await client.post(
        api_keys(tenant_id), json={"name": name, "role": role}, headers=headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def secret_of(key: str, tenant_id: str) -> str:
    return key.removeprefix(f"sk_{tenant_id}_")


# --- creation and listing --------------------------------------------------------------


async def test_create_returns_the_key_once(client: httpx.AsyncClient, world: TenantWorld) -> None:
    # when
    response = await client.post(
        api_keys(world.a), json={"name": "scanner", "role": "clerk"}, headers=world.headers(world.a)
    )

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "name", "role", "prefix", "created_by", "created_at", "key"}
    assert body["key"].startswith(f"sk_{world.a}_")
    assert len(secret_of(body["key"], world.a)) == SECRET_LENGTH
    assert (body["name"], body["role"], body["created_by"]) == ("scanner", "clerk", "user:tester")
    assert body["prefix"] == body["key"][: len(f"sk_{world.a}_") + 8]
    assert uuid.UUID(body["id"]).version == 4


async def test_list_shows_keys_without_their_secrets(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    # given
    admin = world.headers(world.a)
    first = await create_key(client, admin, world.a, role="viewer", name="first")
    second = await create_key(client, admin, world.a, role="admin", name="second")

    # when
    response = await client.get(api_keys(world.a), headers=admin)

    # then
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    assert [key["id"] for key in body["data"]] == [first["id"], second["id"]]
    for created, listed in zip([first, second], body["data"], strict=True):
        assert listed == {name: value for name, value in created.items() if name != "key"}
        assert secret_of(created["key"], world.a) not in response.text


async def test_list_shows_only_the_tenants_own_keys(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    mine = await create_key(client, world.headers(world.a), world.a)
    await create_key(client, world.headers(world.b), world.b)

    response = await client.get(api_keys(world.a), headers=world.headers(world.a))

    assert [key["id"] for key in response.json()["data"]] == [mine["id"]]


async def test_database_stores_only_a_hash(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    # given
    created = await create_key(client, world.headers(world.a), world.a)
    key = created["key"]
    secret = secret_of(key, world.a)

    # when
    row = await owner_connection.fetchrow(
        "SELECT * FROM api_key WHERE id = $1", uuid.UUID(created["id"])
    )

    # then
    assert row is not None
    for column, value in row.items():
        assert key not in str(value), column
        assert secret not in str(value), column
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["key_prefix"] == created["prefix"]
    assert await count_rows(owner_connection, "api_key", world.a) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "role": "platform_admin"},
        {"name": "x", "role": "owner"},
        {"name": "", "role": "viewer"},
        {"name": "x" * 201, "role": "viewer"},
        {"role": "viewer"},
        {"name": "x"},
        {"name": "x", "role": "viewer", "key": "sk_chosen_by_me"},
        {"name": 1, "role": "viewer"},
    ],
)
async def test_invalid_create_body_is_refused_and_writes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, body: object
) -> None:
    response = await client.post(api_keys(world.a), json=body, headers=world.headers(world.a))

    assert_problem(response, 422, "validation-error")
    assert await count_rows(owner_connection, "api_key", world.a) == 0


# --- authenticating with a key ---------------------------------------------------------


async def test_viewer_key_reads_but_may_not_write(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    # given
    key = (await create_key(client, world.headers(world.a), world.a, role="viewer"))["key"]

    # when
    read = await client.get(locations(world.a), headers=bearer(key))
    write = await client.post(locations(world.a), json=LOCATION_BODY, headers=bearer(key))

    # then
    assert read.status_code == 200, read.text
    assert read.json() == {"data": [], "next_cursor": None}
    assert_problem(write, 403, "forbidden")
    assert await count_rows(owner_connection, "location", world.a) == 0


async def test_clerk_key_may_not_manage_api_keys(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    key = (await create_key(client, world.headers(world.a), world.a, role="clerk"))["key"]

    response = await client.post(
        api_keys(world.a), json={"name": "escalate", "role": "admin"}, headers=bearer(key)
    )

    assert_problem(response, 403, "forbidden")
    assert await count_rows(owner_connection, "api_key", world.a) == 1


async def test_admin_key_acts_as_admin_and_is_recorded_as_the_actor(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    # given
    admin_key = await create_key(client, world.headers(world.a), world.a, role="admin")

    # when
    location = await client.post(
        locations(world.a), json=LOCATION_BODY, headers=bearer(admin_key["key"])
    )
    created = await client.post(
        api_keys(world.a),
        json={"name": "child", "role": "viewer"},
        headers=bearer(admin_key["key"]),
    )

    # then
    assert location.status_code == 201, location.text
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == f"api_key:{admin_key['id']}"


async def test_key_of_tenant_a_on_tenant_b_is_a_tenant_mismatch(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    key = (await create_key(client, world.headers(world.a), world.a, role="admin"))["key"]

    read = await client.get(locations(world.b), headers=bearer(key))
    write = await client.post(
        api_keys(world.b), json={"name": "x", "role": "admin"}, headers=bearer(key)
    )

    assert_problem(read, 403, "tenant-mismatch")
    assert_problem(write, 403, "tenant-mismatch")
    assert await count_rows(owner_connection, "api_key", world.b) == 0


async def test_key_relabelled_with_another_tenant_is_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    # given: A's secret presented as if it were B's key
    key = (await create_key(client, world.headers(world.a), world.a, role="admin"))["key"]
    relabelled = f"sk_{world.b}_{secret_of(key, world.a)}"

    # when
    response = await client.get(locations(world.b), headers=bearer(relabelled))

    # then
    assert_unauthorized(response)


# --- revocation ------------------------------------------------------------------------


async def test_revoked_key_is_refused_and_unlisted(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    # given
    admin = world.headers(world.a)
    created = await create_key(client, admin, world.a)
    before = await client.get(locations(world.a), headers=bearer(created["key"]))
    assert before.status_code == 200, before.text

    # when
    revoked = await client.delete(f"{api_keys(world.a)}/{created['id']}", headers=admin)

    # then
    assert revoked.status_code == 204, revoked.text
    assert revoked.content == b""
    after = await client.get(locations(world.a), headers=bearer(created["key"]))
    assert_unauthorized(after)
    assert after.json()["detail"] == "Unknown or revoked API key."
    listed = await client.get(api_keys(world.a), headers=admin)
    assert listed.json()["data"] == []


async def test_revoking_twice_is_not_found(client: httpx.AsyncClient, world: TenantWorld) -> None:
    admin = world.headers(world.a)
    created = await create_key(client, admin, world.a)
    first = await client.delete(f"{api_keys(world.a)}/{created['id']}", headers=admin)

    second = await client.delete(f"{api_keys(world.a)}/{created['id']}", headers=admin)

    assert first.status_code == 204, first.text
    assert_problem(second, 404, "not-found")


async def test_revoking_an_unknown_key_is_not_found(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.delete(
        f"{api_keys(world.a)}/{uuid.uuid4()}", headers=world.headers(world.a)
    )

    assert_problem(response, 404, "not-found")


async def test_revoking_another_tenants_key_is_not_found_and_leaves_it_working(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    # given
    theirs = await create_key(client, world.headers(world.b), world.b)

    # when
    response = await client.delete(
        f"{api_keys(world.a)}/{theirs['id']}", headers=world.headers(world.a)
    )

    # then
    assert_problem(response, 404, "not-found")
    revoked_at = await owner_connection.fetchval(
        "SELECT revoked_at FROM api_key WHERE id = $1", uuid.UUID(theirs["id"])
    )
    assert revoked_at is None
    still_works = await client.get(locations(world.b), headers=bearer(theirs["key"]))
    assert still_works.status_code == 200, still_works.text


async def test_revoking_with_a_malformed_id_is_a_validation_error(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.delete(
        f"{api_keys(world.a)}/not-a-uuid", headers=world.headers(world.a)
    )

    assert_problem(response, 422, "validation-error")


# --- keys that are not keys ------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "sk_",
        "sk_{tenant}",
        "sk_{tenant}_",
        "sk_{tenant}_tooshort",
        "sk_{tenant}_" + "a" * 44,
        "sk_{tenant}_" + "a" * 42 + "!",
        "sk_{upper}_" + "a" * 43,
        "sk_x_" + "a" * 43,
    ],
)
async def test_malformed_key_is_unauthorized(
    client: httpx.AsyncClient, world: TenantWorld, token: str
) -> None:
    presented = token.format(tenant=world.a, upper=world.a.upper())

    response = await client.get(locations(world.a), headers=bearer(presented))

    assert_unauthorized(response)


async def test_well_formed_key_with_a_random_secret_is_unauthorized(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    # given: the tenant has a live key, but not this one
    await create_key(client, world.headers(world.a), world.a)
    guessed = f"sk_{world.a}_{secrets.token_urlsafe(32)}"

    # when
    response = await client.get(locations(world.a), headers=bearer(guessed))

    # then
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_well_formed_key_of_a_tenant_that_does_not_exist_is_unauthorized(
    client: httpx.AsyncClient,
) -> None:
    ghost = f"t-{uuid.uuid4().hex[:12]}"

    response = await client.get(
        locations(ghost), headers=bearer(f"sk_{ghost}_{secrets.token_urlsafe(32)}")
    )

    assert_unauthorized(response)
