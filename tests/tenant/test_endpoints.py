"""`/api/v1/tenants`: the tenant lifecycle, for platform operators."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld, new_tenant_id
from tests.kit.assertions import assert_problem, error_locations
from tests.location.factories import location_body, location_count, locations_url
from tests.tenant.factories import (
    TENANTS_URL,
    UNSET_SETTINGS,
    create_tenant_through_api,
    tenant_body,
    tenant_row,
    tenant_url,
)

RATE_LIMIT = {"requests_per_second": 50, "burst": 100}


# --- create -----------------------------------------------------------------------------------


async def test_create_answers_201_with_etag_and_location_header(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    tenant_id = new_tenant_id()

    response = await client.post(
        TENANTS_URL, json={"id": tenant_id, "name": "Acme"}, headers=world.platform
    )

    assert response.status_code == 201, response.text
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/api/v1/tenants/{tenant_id}"
    body = response.json()
    assert {
        key: value for key, value in body.items() if key not in ("created_at", "updated_at")
    } == {
        "id": tenant_id,
        "name": "Acme",
        "settings": UNSET_SETTINGS,
        "status": "active",
        "version": 1,
    }
    assert body["created_at"] == body["updated_at"]
    row = await tenant_row(owner_connection, tenant_id=tenant_id)
    assert row is not None
    assert (row["name"], row["settings"], row["status"], row["version"]) == (
        "Acme",
        {},
        "active",
        1,
    )
    assert row["created_at"] == datetime.fromisoformat(body["created_at"])


async def test_create_with_settings_stores_them(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    body = tenant_body(settings={"rate_limit": RATE_LIMIT, "low_stock_threshold": 3})

    response = await client.post(TENANTS_URL, json=body, headers=world.platform)

    assert response.status_code == 201, response.text
    assert response.json()["settings"] == {
        "rate_limit": RATE_LIMIT,
        "low_stock_threshold": 3,
        "unpaid_order_expiry_minutes": None,
    }
    row = await tenant_row(owner_connection, tenant_id=body["id"])
    assert row is not None
    assert row["settings"] == {"rate_limit": RATE_LIMIT, "low_stock_threshold": 3}


async def test_a_new_tenant_is_usable_at_once(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_tenant_through_api(client, world)

    response = await client.post(
        locations_url(created["id"]), json=location_body(), headers=world.headers(created["id"])
    )

    assert response.status_code == 201, response.text
    assert await location_count(owner_connection, tenant=created["id"]) == 1


async def test_create_with_a_taken_id_is_409_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    before = await tenant_row(owner_connection, tenant_id=world.a)

    response = await client.post(
        TENANTS_URL, json={"id": world.a, "name": "Impostor"}, headers=world.platform
    )

    body = assert_problem(response, status=409, slug="tenant-exists")
    assert world.a in body["detail"]
    assert await tenant_row(owner_connection, tenant_id=world.a) == before


async def test_a_63_character_id_is_the_longest_allowed(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    tenant_id = new_tenant_id().ljust(63, "0")

    response = await client.post(
        TENANTS_URL, json=tenant_body(tenant_id=tenant_id), headers=world.platform
    )

    assert response.status_code == 201, response.text
    assert response.json()["id"] == tenant_id


@pytest.mark.parametrize(
    "tenant_id",
    [
        "A_b",
        "x",
        "",
        "Acme",
        "a_b",
        "-acme",
        "acme.home",
        "acme home",
        "_platform",
        "ac\u0000me",
        "t-" + "a" * 62,
        "a" * 64,
    ],
)
async def test_an_invalid_tenant_id_is_422_and_writes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, tenant_id: str
) -> None:
    before = await owner_connection.fetchval("SELECT count(*) FROM tenant")

    response = await client.post(
        TENANTS_URL, json={"id": tenant_id, "name": "Bad"}, headers=world.platform
    )

    assert error_locations(response) == [["body", "id"]]
    assert await owner_connection.fetchval("SELECT count(*) FROM tenant") == before


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"name": ""}, ["body", "name"]),
        ({"name": "n" * 201}, ["body", "name"]),
        ({"name": 7}, ["body", "name"]),
        ({"name": "nul\u0000"}, ["body", "name"]),
        ({"status": "suspended"}, ["body", "status"]),
        ({"settings": {"colour": "red"}}, ["body", "settings", "colour"]),
        ({"settings": {"low_stock_threshold": -1}}, ["body", "settings", "low_stock_threshold"]),
        ({"settings": {"low_stock_threshold": "3"}}, ["body", "settings", "low_stock_threshold"]),
        (
            {"settings": {"rate_limit": {"requests_per_second": -5, "burst": 1}}},
            ["body", "settings", "rate_limit", "requests_per_second"],
        ),
        (
            {"settings": {"rate_limit": {"requests_per_second": 5}}},
            ["body", "settings", "rate_limit", "burst"],
        ),
        ({"settings": "fast"}, ["body", "settings"]),
    ],
)
async def test_create_refuses_an_invalid_body_and_writes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    fields: dict[str, Any],
    location: list[str],
) -> None:
    body = tenant_body(**fields)

    response = await client.post(TENANTS_URL, json=body, headers=world.platform)

    assert location in error_locations(response)
    assert await tenant_row(owner_connection, tenant_id=body["id"]) is None


async def test_create_without_a_name_is_422(client: httpx.AsyncClient, world: TenantWorld) -> None:
    response = await client.post(TENANTS_URL, json={"id": new_tenant_id()}, headers=world.platform)

    assert error_locations(response) == [["body", "name"]]


# --- read -------------------------------------------------------------------------------------


async def test_get_returns_the_tenant_with_its_etag(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_tenant_through_api(client, world, settings={"low_stock_threshold": 2})

    response = await client.get(tenant_url(created["id"]), headers=world.platform)

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    assert response.json() == created


async def test_get_with_the_current_etag_in_if_none_match_is_304(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.get(
        tenant_url(world.a), headers=world.platform | {"If-None-Match": 'W/"0", "1"'}
    )

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == '"1"'


async def test_get_of_an_unknown_tenant_is_404(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.get(tenant_url("t-nobody-here"), headers=world.platform)

    body = assert_problem(response, status=404, slug="not-found")
    assert body["title"] == "Tenant not found"


@pytest.mark.parametrize("tenant_id", ["A_b", "x", "a" * 64])
async def test_an_invalid_tenant_id_in_the_path_is_422(
    client: httpx.AsyncClient, world: TenantWorld, tenant_id: str
) -> None:
    got = await client.get(tenant_url(tenant_id), headers=world.platform)
    patched = await client.patch(tenant_url(tenant_id), json={"name": "x"}, headers=world.platform)

    assert error_locations(got) == [["path", "tenant_id"]]
    assert error_locations(patched) == [["path", "tenant_id"]]


async def walk_tenants(
    client: httpx.AsyncClient, world: TenantWorld, *, limit: int, sort: str
) -> list[dict[str, Any]]:
    tenants: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10_000):
        params: dict[str, Any] = {"limit": limit, "sort": sort}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get(TENANTS_URL, params=params, headers=world.platform)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= limit
        tenants.extend(page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return tenants
        assert len(page["data"]) == limit
    raise AssertionError("pagination does not end")


def tenant_sort_key(sort: str, tenant: dict[str, Any]) -> tuple[Any, str]:
    field = sort.removeprefix("-")
    value = datetime.fromisoformat(tenant[field]) if field == "created_at" else tenant[field]
    return value, tenant["id"]


@pytest.mark.parametrize("sort", ["id", "-id", "created_at", "-created_at"])
async def test_list_pages_through_every_tenant_once_in_order(
    client: httpx.AsyncClient, world: TenantWorld, sort: str
) -> None:
    prefix = new_tenant_id()
    mine = [
        (await create_tenant_through_api(client, world, tenant_id=f"{prefix}-{index}"))["id"]
        for index in (3, 0, 4, 1, 2)
    ]

    tenants = await walk_tenants(client, world, limit=4, sort=sort)

    ids = [tenant["id"] for tenant in tenants]
    assert len(ids) == len(set(ids))
    assert {world.a, world.b, *mine} <= set(ids)
    keys = [tenant_sort_key(sort, tenant) for tenant in tenants]
    assert keys == sorted(keys, reverse=sort.startswith("-"))
    in_order = [tenant_id for tenant_id in ids if tenant_id in mine]
    expected = {
        "id": sorted(mine),
        "-id": sorted(mine, reverse=True),
        "created_at": mine,
        "-created_at": mine[::-1],
    }[sort]
    assert in_order == expected
    assert ids == [
        tenant["id"] for tenant in await walk_tenants(client, world, limit=200, sort=sort)
    ]


async def test_list_defaults_to_id_order(client: httpx.AsyncClient, world: TenantWorld) -> None:
    response = await client.get(TENANTS_URL, params={"limit": 5}, headers=world.platform)

    assert response.status_code == 200, response.text
    ids = [tenant["id"] for tenant in response.json()["data"]]
    assert len(ids) == 5
    assert ids == sorted(ids)


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"sort": "name"}, ["query", "sort"]),
        ({"limit": "0"}, ["query", "limit"]),
        ({"limit": "201"}, ["query", "limit"]),
        ({"cursor": "garbage"}, ["query", "cursor"]),
    ],
)
async def test_list_refuses_invalid_parameters(
    client: httpx.AsyncClient, world: TenantWorld, params: dict[str, str], location: list[str]
) -> None:
    response = await client.get(TENANTS_URL, params=params, headers=world.platform)

    assert error_locations(response) == [location]


async def test_a_cursor_from_the_id_order_is_refused_by_the_created_at_order(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    first = await client.get(TENANTS_URL, params={"limit": 1}, headers=world.platform)
    cursor = first.json()["next_cursor"]

    response = await client.get(
        TENANTS_URL, params={"sort": "created_at", "cursor": cursor}, headers=world.platform
    )

    assert error_locations(response) == [["query", "cursor"]]


# --- update -----------------------------------------------------------------------------------


async def test_patch_name_with_the_current_if_match_answers_version_2(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_tenant_through_api(client, world, name="Old name")

    response = await client.patch(
        tenant_url(created["id"]),
        json={"name": "New name"},
        headers=world.platform | {"If-Match": '"1"'},
    )

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    body = response.json()
    assert body == created | {"name": "New name", "version": 2, "updated_at": body["updated_at"]}
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )
    row = await tenant_row(owner_connection, tenant_id=created["id"])
    assert row is not None
    assert (row["name"], row["version"]) == ("New name", 2)


async def test_patch_settings_merges_keys(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_tenant_through_api(client, world, settings={"rate_limit": RATE_LIMIT})

    response = await client.patch(
        tenant_url(created["id"]),
        json={"settings": {"low_stock_threshold": 5}},
        headers=world.platform,
    )

    assert response.status_code == 200, response.text
    assert response.json()["settings"] == {
        "rate_limit": RATE_LIMIT,
        "low_stock_threshold": 5,
        "unpaid_order_expiry_minutes": None,
    }
    assert response.json()["name"] == created["name"]
    row = await tenant_row(owner_connection, tenant_id=created["id"])
    assert row is not None
    assert row["settings"] == {"rate_limit": RATE_LIMIT, "low_stock_threshold": 5}


async def test_patch_settings_replaces_a_key_sent(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_tenant_through_api(
        client, world, settings={"rate_limit": RATE_LIMIT, "low_stock_threshold": 5}
    )
    new_limit = {"requests_per_second": 7, "burst": 9}

    response = await client.patch(
        tenant_url(created["id"]),
        json={"settings": {"rate_limit": new_limit}},
        headers=world.platform,
    )

    assert response.status_code == 200, response.text
    row = await tenant_row(owner_connection, tenant_id=created["id"])
    assert row is not None
    assert row["settings"] == {"rate_limit": new_limit, "low_stock_threshold": 5}


async def test_patch_a_setting_to_null_clears_only_that_setting(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_tenant_through_api(
        client, world, settings={"rate_limit": RATE_LIMIT, "low_stock_threshold": 5}
    )

    response = await client.patch(
        tenant_url(created["id"]), json={"settings": {"rate_limit": None}}, headers=world.platform
    )

    assert response.status_code == 200, response.text
    assert response.json()["settings"] == {
        "rate_limit": None,
        "low_stock_threshold": 5,
        "unpaid_order_expiry_minutes": None,
    }


async def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_tenant_through_api(client, world)
    await client.patch(tenant_url(created["id"]), json={"name": "Second"}, headers=world.platform)
    before = await tenant_row(owner_connection, tenant_id=created["id"])

    response = await client.patch(
        tenant_url(created["id"]),
        json={"name": "Third", "settings": {"low_stock_threshold": 1}},
        headers=world.platform | {"If-Match": '"1"'},
    )

    assert_problem(response, status=412, slug="version-mismatch")
    assert await tenant_row(owner_connection, tenant_id=created["id"]) == before


async def test_patch_of_an_unknown_tenant_is_404(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.patch(
        tenant_url("t-nobody-here"),
        json={"name": "x"},
        headers=world.platform | {"If-Match": '"1"'},
    )

    assert_problem(response, status=404, slug="not-found")
    assert await tenant_row(owner_connection, tenant_id="t-nobody-here") is None


@pytest.mark.parametrize(
    ("patch", "location"),
    [
        ({"name": None}, ["body"]),
        ({"settings": None}, ["body"]),
        ({"status": None}, ["body"]),
        ({"status": "deleted"}, ["body", "status"]),
        ({"name": ""}, ["body", "name"]),
        ({"id": "t-renamed"}, ["body", "id"]),
        ({"version": 9}, ["body", "version"]),
        ({"settings": {"low_stock_threshold": 1.5}}, ["body", "settings", "low_stock_threshold"]),
        (
            {"settings": {"rate_limit": {"burst": 1}}},
            ["body", "settings", "rate_limit", "requests_per_second"],
        ),
    ],
)
async def test_patch_refuses_an_invalid_body_and_changes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    patch: dict[str, Any],
    location: list[str],
) -> None:
    before = await tenant_row(owner_connection, tenant_id=world.a)

    response = await client.patch(tenant_url(world.a), json=patch, headers=world.platform)

    assert location in error_locations(response)
    assert await tenant_row(owner_connection, tenant_id=world.a) == before


async def test_a_suspended_tenant_is_refused_until_it_is_active_again(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    suspended = await client.patch(
        tenant_url(world.a), json={"status": "suspended"}, headers=world.platform
    )
    assert suspended.status_code == 200, suspended.text
    assert (suspended.json()["status"], suspended.json()["version"]) == ("suspended", 2)

    listed = await client.get(locations_url(world.a), headers=world.headers(world.a, "viewer"))
    created = await client.post(
        locations_url(world.a),
        json=location_body(),
        headers=world.headers(world.a) | {"Idempotency-Key": "while-suspended"},
    )
    other_tenant = await client.get(locations_url(world.b), headers=world.headers(world.b))

    assert_problem(listed, status=403, slug="tenant-suspended")
    assert_problem(created, status=403, slug="tenant-suspended")
    assert other_tenant.status_code == 200, other_tenant.text
    assert await location_count(owner_connection, tenant=world.a) == 0
    stored_keys = await owner_connection.fetchval(
        "SELECT count(*) FROM idempotency_key WHERE tenant_id = $1", world.a
    )
    assert stored_keys == 0

    reactivated = await client.patch(
        tenant_url(world.a),
        json={"status": "active"},
        headers=world.platform | {"If-Match": '"2"'},
    )
    assert reactivated.status_code == 200, reactivated.text
    created_again = await client.post(
        locations_url(world.a),
        json=location_body(),
        headers=world.headers(world.a) | {"Idempotency-Key": "while-suspended"},
    )
    assert created_again.status_code == 201, created_again.text
    assert "Idempotent-Replayed" not in created_again.headers
    assert await location_count(owner_connection, tenant=world.a) == 1


async def test_a_suspended_tenant_refuses_its_api_keys_too(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    issued = await client.post(
        f"/api/v1/{world.a}/api-keys",
        json={"name": "scanner", "role": "clerk"},
        headers=world.headers(world.a),
    )
    assert issued.status_code == 201, issued.text
    await client.patch(tenant_url(world.a), json={"status": "suspended"}, headers=world.platform)

    response = await client.get(
        locations_url(world.a), headers={"Authorization": f"Bearer {issued.json()['key']}"}
    )

    assert_problem(response, status=403, slug="tenant-suspended")


async def test_a_stale_suspension_is_412_and_the_tenant_stays_active(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await client.patch(tenant_url(world.a), json={"name": "Renamed"}, headers=world.platform)

    response = await client.patch(
        tenant_url(world.a),
        json={"status": "suspended"},
        headers=world.platform | {"If-Match": '"1"'},
    )

    assert_problem(response, status=412, slug="version-mismatch")
    row = await tenant_row(owner_connection, tenant_id=world.a)
    assert row is not None
    assert (row["status"], row["version"]) == ("active", 2)
    listed = await client.get(locations_url(world.a), headers=world.headers(world.a))
    assert listed.status_code == 200, listed.text


async def test_the_platform_still_reads_a_suspended_tenant(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    await client.patch(tenant_url(world.a), json={"status": "suspended"}, headers=world.platform)

    response = await client.get(tenant_url(world.a), headers=world.platform)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "suspended"


# --- who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "clerk", "viewer", "platform_admin"])
async def test_tenant_credentials_may_not_manage_tenants(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    role: str,
) -> None:
    headers = {"Authorization": f"Bearer {world.token(world.a, role)}"}
    before = await tenant_row(owner_connection, tenant_id=world.a)
    body = tenant_body()

    responses = [
        await client.post(TENANTS_URL, json=body, headers=headers),
        await client.get(TENANTS_URL, headers=headers),
        await client.get(tenant_url(world.a), headers=headers),
        await client.patch(tenant_url(world.a), json={"status": "suspended"}, headers=headers),
    ]

    for response in responses:
        assert_problem(response, status=403, slug="forbidden")
    assert await tenant_row(owner_connection, tenant_id=body["id"]) is None
    assert await tenant_row(owner_connection, tenant_id=world.a) == before


async def test_a_platform_token_without_the_platform_role_is_403(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = {"Authorization": f"Bearer {world.token(None, 'admin')}"}
    body = tenant_body()

    response = await client.post(TENANTS_URL, json=body, headers=headers)

    assert_problem(response, status=403, slug="forbidden")
    assert await tenant_row(owner_connection, tenant_id=body["id"]) is None


async def test_anonymous_callers_get_401_and_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    before = await tenant_row(owner_connection, tenant_id=world.a)
    body = tenant_body()

    responses = [
        await client.post(TENANTS_URL, json=body),
        await client.get(TENANTS_URL),
        await client.get(tenant_url(world.a)),
        await client.patch(tenant_url(world.a), json={"status": "suspended"}),
    ]

    for response in responses:
        assert_problem(response, status=401, slug="unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await tenant_row(owner_connection, tenant_id=body["id"]) is None
    assert await tenant_row(owner_connection, tenant_id=world.a) == before
