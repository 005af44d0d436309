"""`/api/v1/{tenantId}/locations`: create, read, list, update, delete; tenancy and roles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld, bearer
from tests.kit.assertions import assert_problem, assert_validation_error, error_locations
from tests.location.factories import (
    create_location,
    location_body,
    location_count,
    location_row,
    location_rows,
    location_url,
    locations_url,
)

EMPTY_ADDRESS = {
    "line1": None,
    "line2": None,
    "city": None,
    "region": None,
    "postal_code": None,
    "country": None,
}


def as_user(
    world: TenantWorld, tenant: str, *, role: str = "admin", subject: str
) -> dict[str, str]:
    return bearer(world.token(tenant, role, subject=subject))


# --- create -----------------------------------------------------------------------------------


async def test_create_answers_201_with_etag_location_header_and_the_actor(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        locations_url(world.a),
        json=location_body(code="WH-RTM", name="Rotterdam", kind="warehouse"),
        headers=as_user(world, world.a, subject="alice"),
    )

    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/api/v1/{world.a}/locations/{body['id']}"
    assert uuid.UUID(body["id"]).version == 4
    assert {
        key: value for key, value in body.items() if key not in ("id", "created_at", "updated_at")
    } == {
        "code": "WH-RTM",
        "name": "Rotterdam",
        "kind": "warehouse",
        "address": None,
        "active": True,
        "priority": 0,
        "version": 1,
        "created_by": "user:alice",
        "updated_by": "user:alice",
    }
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("Z")
    row = await location_row(owner_connection, tenant=world.a, location_id=body["id"])
    assert row is not None
    assert (row["code"], row["created_by"], row["updated_by"], row["version"]) == (
        "WH-RTM",
        "user:alice",
        "user:alice",
        1,
    )
    assert row["created_at"] == datetime.fromisoformat(body["created_at"])
    assert await location_count(owner_connection, tenant=world.b) == 0


async def test_create_with_an_api_key_records_the_key_as_the_actor(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    issued = await client.post(
        f"/api/v1/{world.a}/api-keys",
        json={"name": "provisioning", "role": "admin"},
        headers=world.headers(world.a),
    )
    assert issued.status_code == 201, issued.text

    response = await client.post(
        locations_url(world.a), json=location_body(), headers=bearer(issued.json()["key"])
    )

    assert response.status_code == 201, response.text
    actor = f"api_key:{issued.json()['id']}"
    assert (response.json()["created_by"], response.json()["updated_by"]) == (actor, actor)
    row = await location_row(owner_connection, tenant=world.a, location_id=response.json()["id"])
    assert row is not None
    assert row["created_by"] == actor


async def test_create_stores_only_the_address_fields_sent(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        locations_url(world.a),
        json=location_body(
            kind="store", address={"city": "Rotterdam", "country": "NL"}, active=False, priority=7
        ),
        headers=world.headers(world.a),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["address"] == EMPTY_ADDRESS | {"city": "Rotterdam", "country": "NL"}
    assert (body["kind"], body["active"], body["priority"]) == ("store", False, 7)
    row = await location_row(owner_connection, tenant=world.a, location_id=body["id"])
    assert row is not None
    assert row["address"] == {"city": "Rotterdam", "country": "NL"}


async def test_create_accepts_json_with_a_charset(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        locations_url(world.a),
        content=b'{"code": "WH-1", "name": "Main", "kind": "warehouse"}',
        headers=world.headers(world.a) | {"Content-Type": "application/json; charset=utf-8"},
    )

    assert response.status_code == 201, response.text
    assert await location_count(owner_connection, tenant=world.a) == 1


@pytest.mark.parametrize(
    ("fields", "location"),
    [
        ({"code": None}, ["body", "code"]),
        ({"code": ""}, ["body", "code"]),
        ({"code": "has space"}, ["body", "code"]),
        ({"code": "-leading-dash"}, ["body", "code"]),
        ({"code": "X" * 65}, ["body", "code"]),
        ({"name": ""}, ["body", "name"]),
        ({"name": "n" * 201}, ["body", "name"]),
        ({"name": 42}, ["body", "name"]),
        ({"name": "nul\u0000byte"}, ["body", "name"]),
        ({"kind": "depot"}, ["body", "kind"]),
        ({"kind": "Warehouse"}, ["body", "kind"]),
        ({"kind": None}, ["body", "kind"]),
        ({"active": "yes"}, ["body", "active"]),
        ({"active": 1}, ["body", "active"]),
        ({"priority": "5"}, ["body", "priority"]),
        ({"priority": 2.5}, ["body", "priority"]),
        ({"priority": -1001}, ["body", "priority"]),
        ({"priority": 1001}, ["body", "priority"]),
        ({"priority": 10**30}, ["body", "priority"]),
        ({"address": "1 Dock Road"}, ["body", "address"]),
        ({"address": {"country": "nl"}}, ["body", "address", "country"]),
        ({"address": {"city": "c" * 101}}, ["body", "address", "city"]),
        ({"address": {"city": "nul\u0000"}}, ["body", "address", "city"]),
        ({"address": {"planet": "Mars"}}, ["body", "address", "planet"]),
        ({"tenant_id": "someone-else"}, ["body", "tenant_id"]),
        ({"version": 5}, ["body", "version"]),
    ],
)
async def test_create_refuses_an_invalid_body_and_writes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    fields: dict[str, Any],
    location: list[str],
) -> None:
    body = {key: value for key, value in (location_body() | fields).items() if value is not None}

    response = await client.post(locations_url(world.a), json=body, headers=world.headers(world.a))

    assert location in error_locations(response)
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_create_with_a_duplicate_code_is_409_and_writes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    first = await create_location(client, world, tenant=world.a, code="WH-1", name="First")

    response = await client.post(
        locations_url(world.a),
        json=location_body(code="WH-1", name="Second"),
        headers=world.headers(world.a),
    )

    body = assert_problem(response, status=409, slug="duplicate-code")
    assert "WH-1" in body["detail"]
    rows = await location_rows(owner_connection, tenant=world.a)
    assert [(str(row["id"]), row["name"]) for row in rows] == [(first["id"], "First")]


async def test_the_same_code_in_another_tenant_is_fine(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await create_location(client, world, tenant=world.a, code="WH-1")

    response = await client.post(
        locations_url(world.b), json=location_body(code="WH-1"), headers=world.headers(world.b)
    )

    assert response.status_code == 201, response.text
    assert await location_count(owner_connection, tenant=world.a) == 1
    assert await location_count(owner_connection, tenant=world.b) == 1


# --- read -------------------------------------------------------------------------------------


async def test_get_returns_the_location_with_its_etag(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_location(client, world, tenant=world.a, address={"line1": "1 Dock"})

    response = await client.get(
        location_url(world.a, created["id"]), headers=world.headers(world.a, "viewer")
    )

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    assert response.json() == created
    assert response.json()["address"] == EMPTY_ADDRESS | {"line1": "1 Dock"}


async def test_get_with_the_current_etag_in_if_none_match_is_304(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_location(client, world, tenant=world.a)

    response = await client.get(
        location_url(world.a, created["id"]),
        headers=world.headers(world.a) | {"If-None-Match": '"1"'},
    )

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == '"1"'
    assert "X-Request-ID" in response.headers


async def test_get_with_a_stale_etag_in_if_none_match_is_200(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_location(client, world, tenant=world.a)
    await client.patch(
        location_url(world.a, created["id"]),
        json={"name": "Renamed"},
        headers=world.headers(world.a),
    )

    response = await client.get(
        location_url(world.a, created["id"]),
        headers=world.headers(world.a) | {"If-None-Match": '"1"'},
    )

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    assert response.json()["name"] == "Renamed"


async def test_get_of_an_unknown_id_is_404(client: httpx.AsyncClient, world: TenantWorld) -> None:
    response = await client.get(
        location_url(world.a, str(uuid.uuid4())), headers=world.headers(world.a)
    )

    assert_problem(response, status=404, slug="not-found")


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
@pytest.mark.parametrize("location_id", ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g"])
async def test_an_invalid_uuid_in_the_path_is_422(
    client: httpx.AsyncClient, world: TenantWorld, method: str, location_id: str
) -> None:
    response = await client.request(
        method,
        location_url(world.a, location_id),
        json={"name": "x"} if method == "PATCH" else None,
        headers=world.headers(world.a),
    )

    assert error_locations(response) == [["path", "location_id"]]


async def test_list_returns_data_and_a_null_cursor_oldest_first(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    first = await create_location(client, world, tenant=world.a, code="WH-1")
    second = await create_location(client, world, tenant=world.a, code="ST-1", kind="store")
    await create_location(client, world, tenant=world.b, code="OTHER")

    response = await client.get(locations_url(world.a), headers=world.headers(world.a, "viewer"))

    assert response.status_code == 200, response.text
    assert response.json() == {"data": [first, second], "next_cursor": None}


async def test_list_of_a_tenant_without_locations_is_empty(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.get(locations_url(world.a), headers=world.headers(world.a))

    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}


async def test_list_filters_by_kind_and_active(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    warehouse = await create_location(client, world, tenant=world.a, code="WH-1", kind="warehouse")
    closed = await create_location(
        client, world, tenant=world.a, code="WH-2", kind="warehouse", active=False
    )
    store = await create_location(client, world, tenant=world.a, code="ST-1", kind="store")
    headers = world.headers(world.a, "clerk")

    async def codes(params: dict[str, str]) -> list[str]:
        response = await client.get(locations_url(world.a), params=params, headers=headers)
        assert response.status_code == 200, response.text
        return [location["code"] for location in response.json()["data"]]

    assert await codes({"kind": "warehouse"}) == [warehouse["code"], closed["code"]]
    assert await codes({"kind": "store"}) == [store["code"]]
    assert await codes({"active": "true"}) == [warehouse["code"], store["code"]]
    assert await codes({"active": "false"}) == [closed["code"]]
    assert await codes({"kind": "warehouse", "active": "true"}) == [warehouse["code"]]
    assert await codes({"kind": "store", "active": "false"}) == []


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"kind": "depot"}, ["query", "kind"]),
        ({"active": "maybe"}, ["query", "active"]),
        ({"limit": "ten"}, ["query", "limit"]),
    ],
)
async def test_list_refuses_invalid_filters(
    client: httpx.AsyncClient, world: TenantWorld, params: dict[str, str], location: list[str]
) -> None:
    response = await client.get(
        locations_url(world.a), params=params, headers=world.headers(world.a)
    )

    assert error_locations(response) == [location]


# --- update -----------------------------------------------------------------------------------


async def test_patch_with_the_current_if_match_answers_version_2(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a, code="WH-1", name="Old")

    response = await client.patch(
        location_url(world.a, created["id"]),
        json={"name": "New", "kind": "store", "priority": -3},
        headers=as_user(world, world.a, subject="bob") | {"If-Match": '"1"'},
    )

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"2"'
    body = response.json()
    assert body == created | {
        "name": "New",
        "kind": "store",
        "priority": -3,
        "version": 2,
        "updated_by": "user:bob",
        "updated_at": body["updated_at"],
    }
    assert datetime.fromisoformat(body["updated_at"]) > datetime.fromisoformat(
        created["updated_at"]
    )
    row = await location_row(owner_connection, tenant=world.a, location_id=created["id"])
    assert row is not None
    assert (row["name"], row["kind"], row["version"], row["created_by"], row["updated_by"]) == (
        "New",
        "store",
        2,
        "user:tester",
        "user:bob",
    )


async def test_patch_without_if_match_applies(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_location(client, world, tenant=world.a)

    response = await client.patch(
        location_url(world.a, created["id"]), json={"active": False}, headers=world.headers(world.a)
    )

    assert response.status_code == 200, response.text
    assert (response.json()["active"], response.json()["version"]) == (False, 2)


async def test_patch_with_if_match_star_applies(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_location(client, world, tenant=world.a)

    response = await client.patch(
        location_url(world.a, created["id"]),
        json={"code": "WH-9"},
        headers=world.headers(world.a) | {"If-Match": "*"},
    )

    assert response.status_code == 200, response.text
    assert (response.json()["code"], response.json()["version"]) == ("WH-9", 2)


@pytest.mark.parametrize("if_match", ['"2"', '"0"', '"abc"', "1", '"99999999999"', '"-1"'])
async def test_patch_with_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, if_match: str
) -> None:
    created = await create_location(client, world, tenant=world.a)
    before = await location_row(owner_connection, tenant=world.a, location_id=created["id"])

    response = await client.patch(
        location_url(world.a, created["id"]),
        json={"name": "Changed"},
        headers=world.headers(world.a) | {"If-Match": if_match},
    )

    assert_problem(response, status=412, slug="version-mismatch")
    after = await location_row(owner_connection, tenant=world.a, location_id=created["id"])
    assert after == before


async def test_patch_address_null_clears_the_address(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a, address={"city": "Utrecht"})

    response = await client.patch(
        location_url(world.a, created["id"]), json={"address": None}, headers=world.headers(world.a)
    )

    assert response.status_code == 200, response.text
    assert response.json()["address"] is None
    row = await location_row(owner_connection, tenant=world.a, location_id=created["id"])
    assert row is not None
    assert row["address"] is None


async def test_patch_address_replaces_the_whole_address(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(
        client, world, tenant=world.a, address={"city": "Utrecht", "country": "NL"}
    )

    response = await client.patch(
        location_url(world.a, created["id"]),
        json={"address": {"line1": "2 Quay"}},
        headers=world.headers(world.a),
    )

    assert response.status_code == 200, response.text
    row = await location_row(owner_connection, tenant=world.a, location_id=created["id"])
    assert row is not None
    assert row["address"] == {"line1": "2 Quay"}


async def test_patch_leaves_fields_not_sent_alone(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_location(
        client, world, tenant=world.a, address={"city": "Utrecht"}, priority=5, active=False
    )

    response = await client.patch(
        location_url(world.a, created["id"]),
        json={"name": "Renamed"},
        headers=world.headers(world.a),
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["code"], body["kind"], body["address"], body["priority"], body["active"]) == (
        created["code"],
        created["kind"],
        created["address"],
        5,
        False,
    )


@pytest.mark.parametrize(
    ("patch", "location"),
    [
        ({"name": None}, ["body"]),
        ({"code": None}, ["body"]),
        ({"kind": None}, ["body"]),
        ({"active": None}, ["body"]),
        ({"priority": None}, ["body"]),
        ({"name": ""}, ["body", "name"]),
        ({"kind": "depot"}, ["body", "kind"]),
        ({"active": "false"}, ["body", "active"]),
        ({"priority": 1001}, ["body", "priority"]),
        ({"code": "no spaces"}, ["body", "code"]),
        ({"colour": "blue"}, ["body", "colour"]),
        ({"version": 7}, ["body", "version"]),
        ({"id": str(uuid.uuid4())}, ["body", "id"]),
        ({"created_by": "user:mallory"}, ["body", "created_by"]),
    ],
)
async def test_patch_refuses_an_invalid_body_and_changes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    patch: dict[str, Any],
    location: list[str],
) -> None:
    created = await create_location(client, world, tenant=world.a)
    before = await location_row(owner_connection, tenant=world.a, location_id=created["id"])

    response = await client.patch(
        location_url(world.a, created["id"]), json=patch, headers=world.headers(world.a)
    )

    assert location in error_locations(response)
    after = await location_row(owner_connection, tenant=world.a, location_id=created["id"])
    assert after == before


async def test_patch_name_null_says_which_field(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_location(client, world, tenant=world.a)

    response = await client.patch(
        location_url(world.a, created["id"]), json={"name": None}, headers=world.headers(world.a)
    )

    [error] = assert_validation_error(response)
    assert "`name` may not be null" in error["msg"]


async def test_patch_to_a_code_in_use_is_409_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await create_location(client, world, tenant=world.a, code="WH-1")
    second = await create_location(client, world, tenant=world.a, code="WH-2")
    before = await location_row(owner_connection, tenant=world.a, location_id=second["id"])

    response = await client.patch(
        location_url(world.a, second["id"]), json={"code": "WH-1"}, headers=world.headers(world.a)
    )

    assert_problem(response, status=409, slug="duplicate-code")
    assert await location_row(owner_connection, tenant=world.a, location_id=second["id"]) == before


async def test_patch_of_an_unknown_id_is_404(client: httpx.AsyncClient, world: TenantWorld) -> None:
    response = await client.patch(
        location_url(world.a, str(uuid.uuid4())),
        json={"name": "x"},
        headers=world.headers(world.a) | {"If-Match": '"1"'},
    )

    assert_problem(response, status=404, slug="not-found")


# --- delete -----------------------------------------------------------------------------------


async def test_delete_answers_204_and_then_404(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)
    kept = await create_location(client, world, tenant=world.a, code="WH-2")

    response = await client.delete(
        location_url(world.a, created["id"]), headers=world.headers(world.a)
    )

    assert response.status_code == 204, response.text
    assert response.content == b""
    assert [str(row["id"]) for row in await location_rows(owner_connection, tenant=world.a)] == [
        kept["id"]
    ]
    again = await client.get(location_url(world.a, created["id"]), headers=world.headers(world.a))
    assert_problem(again, status=404, slug="not-found")
    deleted_again = await client.delete(
        location_url(world.a, created["id"]), headers=world.headers(world.a)
    )
    assert_problem(deleted_again, status=404, slug="not-found")


async def test_delete_with_the_current_if_match_deletes(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)

    response = await client.delete(
        location_url(world.a, created["id"]), headers=world.headers(world.a) | {"If-Match": '"1"'}
    )

    assert response.status_code == 204, response.text
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_delete_with_a_stale_if_match_is_412_and_keeps_the_row(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)

    response = await client.delete(
        location_url(world.a, created["id"]), headers=world.headers(world.a) | {"If-Match": '"2"'}
    )

    assert_problem(response, status=412, slug="version-mismatch")
    assert await location_count(owner_connection, tenant=world.a) == 1


async def add_stock(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, location_id: str, quantity: int
) -> str:
    """Create an item and put `quantity` of it at the location; returns the item's id."""
    headers = world.headers(tenant)
    item = await client.post(
        f"/api/v1/{tenant}/inventory", json={"sku": "SKU-1", "name": "Towel"}, headers=headers
    )
    assert item.status_code == 201, item.text
    added = await client.patch(
        f"/api/v1/{tenant}/inventory/{item.json()['id']}/stock",
        json={"operation": "add", "quantity": quantity, "location_id": location_id},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    item_id: str = item.json()["id"]
    return item_id


async def test_delete_of_a_location_holding_stock_is_409_not_empty(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)
    await add_stock(client, world, tenant=world.a, location_id=created["id"], quantity=5)
    before = await location_row(owner_connection, tenant=world.a, location_id=created["id"])

    response = await client.delete(
        location_url(world.a, created["id"]), headers=world.headers(world.a)
    )

    body = assert_problem(response, status=409, slug="location-not-empty")
    assert "`active` to false" in body["detail"]
    assert await location_row(owner_connection, tenant=world.a, location_id=created["id"]) == before
    on_hand = await owner_connection.fetchval(
        "SELECT sum(on_hand) FROM stock_level WHERE tenant_id = $1 AND location_id = $2::uuid",
        world.a,
        created["id"],
    )
    assert on_hand == 5


async def test_a_location_with_stock_history_is_deactivated_rather_than_deleted(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = await create_location(client, world, tenant=world.a)
    item_id = await add_stock(client, world, tenant=world.a, location_id=created["id"], quantity=2)
    emptied = await client.patch(
        f"/api/v1/{world.a}/inventory/{item_id}/stock",
        json={"operation": "subtract", "quantity": 2, "location_id": created["id"]},
        headers=world.headers(world.a),
    )
    assert emptied.status_code == 200, emptied.text

    deleted = await client.delete(
        location_url(world.a, created["id"]), headers=world.headers(world.a)
    )
    deactivated = await client.patch(
        location_url(world.a, created["id"]), json={"active": False}, headers=world.headers(world.a)
    )

    assert_problem(deleted, status=409, slug="location-not-empty")
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["active"] is False


# --- tenancy ----------------------------------------------------------------------------------


async def test_another_tenants_location_is_404_and_stays_unchanged(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    theirs = await create_location(client, world, tenant=world.b)
    before = await location_row(owner_connection, tenant=world.b, location_id=theirs["id"])
    url = location_url(world.a, theirs["id"])
    headers = world.headers(world.a)

    got = await client.get(url, headers=headers)
    patched = await client.patch(url, json={"name": "Mine now"}, headers=headers)
    patched_if_match = await client.patch(
        url, json={"name": "Mine now"}, headers=headers | {"If-Match": '"1"'}
    )
    deleted = await client.delete(url, headers=headers)

    for response in (got, patched, patched_if_match, deleted):
        assert_problem(response, status=404, slug="not-found")
    assert await location_row(owner_connection, tenant=world.b, location_id=theirs["id"]) == before
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_a_token_of_another_tenant_is_403_tenant_mismatch_and_writes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    theirs = await create_location(client, world, tenant=world.b)
    before = await location_row(owner_connection, tenant=world.b, location_id=theirs["id"])
    headers = world.headers(world.a)

    responses = [
        await client.get(locations_url(world.b), headers=headers),
        await client.post(locations_url(world.b), json=location_body(code="NEW"), headers=headers),
        await client.get(location_url(world.b, theirs["id"]), headers=headers),
        await client.patch(
            location_url(world.b, theirs["id"]), json={"name": "x"}, headers=headers
        ),
        await client.delete(location_url(world.b, theirs["id"]), headers=headers),
    ]

    for response in responses:
        assert_problem(response, status=403, slug="tenant-mismatch")
    assert await location_rows(owner_connection, tenant=world.b) == [before]
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_a_platform_token_may_not_use_tenant_endpoints(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    listed = await client.get(locations_url(world.a), headers=world.platform)
    created = await client.post(
        locations_url(world.a), json=location_body(), headers=world.platform
    )

    assert_problem(listed, status=403, slug="forbidden")
    assert_problem(created, status=403, slug="forbidden")
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_an_unknown_tenant_is_404(client: httpx.AsyncClient, world: TenantWorld) -> None:
    response = await client.get(
        locations_url("t-does-not-exist"), headers=world.headers("t-does-not-exist")
    )

    assert_problem(response, status=404, slug="not-found")


# --- roles and authentication -----------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "clerk", "admin"])
async def test_every_role_reads(client: httpx.AsyncClient, world: TenantWorld, role: str) -> None:
    created = await create_location(client, world, tenant=world.a)
    headers = world.headers(world.a, role)

    listed = await client.get(locations_url(world.a), headers=headers)
    got = await client.get(location_url(world.a, created["id"]), headers=headers)

    assert listed.status_code == 200, listed.text
    assert [location["id"] for location in listed.json()["data"]] == [created["id"]]
    assert got.status_code == 200, got.text
    assert got.json() == created


@pytest.mark.parametrize("role", ["viewer", "clerk"])
async def test_viewer_and_clerk_may_not_create_change_or_delete(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    created = await create_location(client, world, tenant=world.a)
    before = await location_rows(owner_connection, tenant=world.a)
    headers = world.headers(world.a, role)
    url = location_url(world.a, created["id"])

    responses = [
        await client.post(locations_url(world.a), json=location_body(code="NEW"), headers=headers),
        await client.patch(url, json={"name": "x"}, headers=headers),
        await client.patch(url, json={"name": "x"}, headers=headers | {"If-Match": '"1"'}),
        await client.delete(url, headers=headers),
    ]

    for response in responses:
        assert_problem(response, status=403, slug="forbidden")
    assert await location_rows(owner_connection, tenant=world.a) == before


async def test_a_role_outside_the_tenant_roles_grants_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = bearer(world.token(world.a, "superuser"))

    listed = await client.get(locations_url(world.a), headers=headers)
    created = await client.post(locations_url(world.a), json=location_body(), headers=headers)

    assert_problem(listed, status=403, slug="forbidden")
    assert_problem(created, status=403, slug="forbidden")
    assert await location_count(owner_connection, tenant=world.a) == 0


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer not-a-jwt", "Basic dXNlcjpwYXNz", "Bearer sk_x_y"]
)
async def test_without_a_valid_credential_every_endpoint_is_401(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    authorization: str | None,
) -> None:
    created = await create_location(client, world, tenant=world.a)
    before = await location_rows(owner_connection, tenant=world.a)
    headers = {} if authorization is None else {"Authorization": authorization}
    url = location_url(world.a, created["id"])

    responses = [
        await client.get(locations_url(world.a), headers=headers),
        await client.post(locations_url(world.a), json=location_body(code="NEW"), headers=headers),
        await client.get(url, headers=headers),
        await client.patch(url, json={"name": "x"}, headers=headers),
        await client.delete(url, headers=headers),
    ]

    for response in responses:
        assert_problem(response, status=401, slug="unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert await location_rows(owner_connection, tenant=world.a) == before
