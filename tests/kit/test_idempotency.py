"""`Idempotency-Key` on POST and PATCH: replay, reuse, in flight, per tenant, expiry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message

from shelfkeeper.db.database import PLATFORM_SCOPE, Connection
from shelfkeeper.kit.idempotency import fingerprint
from tests.conftest import TenantWorld
from tests.kit.assertions import assert_problem, error_locations
from tests.location.factories import (
    create_location,
    location_body,
    location_count,
    location_row,
    location_url,
    locations_url,
)
from tests.tenant.factories import TENANTS_URL, tenant_body, tenant_row


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return headers | {"Idempotency-Key": key}


async def stored_keys(owner: Connection, *, tenant: str) -> list[str]:
    rows = await owner.fetch(
        "SELECT key FROM idempotency_key WHERE tenant_id = $1 ORDER BY key", tenant
    )
    return [row["key"] for row in rows]


@asynccontextmanager
async def key_held_elsewhere(owner: Connection, *, scope: str, key: str) -> AsyncIterator[None]:
    """Hold the key's advisory lock, as a first request still running would."""
    lock = f"{scope}\n{key}"
    await owner.execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", lock)
    try:
        yield
    finally:
        await owner.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock)


# --- replay -----------------------------------------------------------------------------------


async def test_a_repeated_post_replays_the_first_response_and_creates_one_row(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "create-wh-1")

    first = await client.post(locations_url(world.a), json=location_body(), headers=headers)
    second = await client.post(locations_url(world.a), json=location_body(), headers=headers)

    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    assert second.status_code == 201, second.text
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.content == first.content
    for header in ("Content-Type", "ETag", "Location"):
        assert second.headers[header] == first.headers[header], header
    assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert await location_count(owner_connection, tenant=world.a) == 1
    assert await stored_keys(owner_connection, tenant=world.a) == ["create-wh-1"]


async def test_the_same_json_written_differently_is_the_same_request(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "spacing") | {"Content-Type": "application/json"}

    first = await client.post(
        locations_url(world.a),
        content=b'{"code": "WH-1", "name": "Main", "kind": "store"}',
        headers=headers,
    )
    second = await client.post(
        locations_url(world.a),
        content=b'{ "kind":"store","name":"Main",\n "code":"WH-1" }',
        headers=headers,
    )

    assert first.status_code == 201, first.text
    assert (second.status_code, second.headers["Idempotent-Replayed"]) == (201, "true")
    assert second.json() == first.json()
    assert await location_count(owner_connection, tenant=world.a) == 1


async def test_a_replay_returns_the_first_response_even_after_later_changes(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    headers = keyed(world.headers(world.a), "first-version")
    first = await client.post(locations_url(world.a), json=location_body(), headers=headers)
    await client.patch(
        location_url(world.a, first.json()["id"]),
        json={"name": "Renamed"},
        headers=world.headers(world.a),
    )

    replayed = await client.post(locations_url(world.a), json=location_body(), headers=headers)

    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == first.json()
    assert replayed.json()["version"] == 1


async def test_a_repeated_patch_replays_and_applies_once(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)
    headers = keyed(world.headers(world.a), "rename-1") | {"If-Match": '"1"'}
    url = location_url(world.a, created["id"])

    first = await client.patch(url, json={"name": "Renamed"}, headers=headers)
    second = await client.patch(url, json={"name": "Renamed"}, headers=headers)

    assert first.status_code == 200, first.text
    assert (second.status_code, second.headers["Idempotent-Replayed"]) == (200, "true")
    assert second.content == first.content
    assert second.headers["ETag"] == first.headers["ETag"] == '"2"'
    row = await location_row(owner_connection, tenant=world.a, location_id=created["id"])
    assert row is not None
    assert (row["name"], row["version"]) == ("Renamed", 2)


async def test_a_get_ignores_the_key(client: httpx.AsyncClient, world: TenantWorld) -> None:
    response = await client.get(
        locations_url(world.a), headers=keyed(world.headers(world.a), "k" * 300)
    )

    assert response.status_code == 200, response.text
    assert "Idempotent-Replayed" not in response.headers


async def test_a_delete_ignores_the_key(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)

    response = await client.delete(
        location_url(world.a, created["id"]), headers=keyed(world.headers(world.a), "del")
    )

    assert response.status_code == 204, response.text
    assert await stored_keys(owner_connection, tenant=world.a) == []


# --- reuse ------------------------------------------------------------------------------------


async def test_the_same_key_with_another_body_is_422_reuse(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "create")
    await client.post(locations_url(world.a), json=location_body(code="WH-1"), headers=headers)

    response = await client.post(
        locations_url(world.a), json=location_body(code="WH-2"), headers=headers
    )

    assert_problem(response, status=422, slug="idempotency-key-reuse")
    assert "Idempotent-Replayed" not in response.headers
    rows = await owner_connection.fetch("SELECT code FROM location WHERE tenant_id = $1", world.a)
    assert [row["code"] for row in rows] == ["WH-1"]


async def test_the_same_key_on_another_endpoint_is_422_reuse(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "shared")
    created = await client.post(locations_url(world.a), json=location_body(), headers=headers)
    before = await location_row(owner_connection, tenant=world.a, location_id=created.json()["id"])

    response = await client.patch(
        location_url(world.a, created.json()["id"]), json={"name": "x"}, headers=headers
    )

    assert_problem(response, status=422, slug="idempotency-key-reuse")
    after = await location_row(owner_connection, tenant=world.a, location_id=created.json()["id"])
    assert after == before


# --- in flight --------------------------------------------------------------------------------


async def test_a_key_whose_first_request_is_running_is_409_in_flight(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "slow")

    async with key_held_elsewhere(owner_connection, scope=world.a, key="slow"):
        response = await client.post(locations_url(world.a), json=location_body(), headers=headers)

    assert_problem(response, status=409, slug="idempotency-key-in-flight")
    assert await location_count(owner_connection, tenant=world.a) == 0
    assert await stored_keys(owner_connection, tenant=world.a) == []
    after_release = await client.post(locations_url(world.a), json=location_body(), headers=headers)
    assert after_release.status_code == 201, after_release.text
    assert "Idempotent-Replayed" not in after_release.headers


async def test_a_patch_whose_key_is_in_flight_is_409_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)
    before = await location_row(owner_connection, tenant=world.a, location_id=created["id"])

    async with key_held_elsewhere(owner_connection, scope=world.a, key="rename"):
        response = await client.patch(
            location_url(world.a, created["id"]),
            json={"name": "Renamed"},
            headers=keyed(world.headers(world.a), "rename"),
        )

    assert_problem(response, status=409, slug="idempotency-key-in-flight")
    assert await location_row(owner_connection, tenant=world.a, location_id=created["id"]) == before


async def test_concurrent_identical_requests_create_one_row(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "burst")

    responses = await asyncio.gather(
        *(
            client.post(locations_url(world.a), json=location_body(), headers=headers)
            for _ in range(20)
        )
    )

    statuses = sorted(response.status_code for response in responses)
    assert set(statuses) <= {201, 409}, [response.text for response in responses]
    originals = [
        response
        for response in responses
        if response.status_code == 201 and "Idempotent-Replayed" not in response.headers
    ]
    assert len(originals) == 1
    for response in responses:
        if response.status_code == 201:
            assert response.content == originals[0].content
        else:
            assert_problem(response, status=409, slug="idempotency-key-in-flight")
    assert await location_count(owner_connection, tenant=world.a) == 1
    assert await stored_keys(owner_connection, tenant=world.a) == ["burst"]


# --- scope and lifetime -----------------------------------------------------------------------


async def test_keys_are_scoped_per_tenant(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    in_a = await client.post(
        locations_url(world.a), json=location_body(), headers=keyed(world.headers(world.a), "k-1")
    )

    in_b = await client.post(
        locations_url(world.b), json=location_body(), headers=keyed(world.headers(world.b), "k-1")
    )

    assert in_a.status_code == 201, in_a.text
    assert in_b.status_code == 201, in_b.text
    assert "Idempotent-Replayed" not in in_b.headers
    assert in_b.json()["id"] != in_a.json()["id"]
    assert await location_count(owner_connection, tenant=world.a) == 1
    assert await location_count(owner_connection, tenant=world.b) == 1
    assert await stored_keys(owner_connection, tenant=world.a) == ["k-1"]
    assert await stored_keys(owner_connection, tenant=world.b) == ["k-1"]


async def test_a_key_in_flight_in_another_tenant_does_not_block(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    async with key_held_elsewhere(owner_connection, scope=world.b, key="k"):
        response = await client.post(
            locations_url(world.a), json=location_body(), headers=keyed(world.headers(world.a), "k")
        )

    assert response.status_code == 201, response.text


async def test_a_failed_request_stores_nothing_and_its_retry_runs(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    taken = await create_location(client, world, tenant=world.a, code="WH-1", name="Taken")
    headers = keyed(world.headers(world.a), "retry-me")

    conflict = await client.post(
        locations_url(world.a), json=location_body(code="WH-1"), headers=headers
    )
    assert_problem(conflict, status=409, slug="duplicate-code")
    assert await stored_keys(owner_connection, tenant=world.a) == []
    deleted = await client.delete(
        location_url(world.a, taken["id"]), headers=world.headers(world.a)
    )
    assert deleted.status_code == 204

    retried = await client.post(
        locations_url(world.a), json=location_body(code="WH-1"), headers=headers
    )

    assert retried.status_code == 201, retried.text
    assert "Idempotent-Replayed" not in retried.headers
    assert retried.json()["name"] == "Main warehouse"
    assert await stored_keys(owner_connection, tenant=world.a) == ["retry-me"]


async def test_an_invalid_body_stores_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "bad-body")

    invalid = await client.post(locations_url(world.a), json={"code": "WH-1"}, headers=headers)
    valid = await client.post(locations_url(world.a), json=location_body(), headers=headers)

    assert invalid.status_code == 422, invalid.text
    assert valid.status_code == 201, valid.text
    assert "Idempotent-Replayed" not in valid.headers


async def test_an_expired_key_runs_again(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "old")
    first = await client.post(locations_url(world.a), json=location_body(), headers=headers)
    await client.delete(location_url(world.a, first.json()["id"]), headers=world.headers(world.a))
    await owner_connection.execute(
        "UPDATE idempotency_key SET expires_at = now() - interval '1 second' "
        "WHERE tenant_id = $1 AND key = 'old'",
        world.a,
    )

    again = await client.post(locations_url(world.a), json=location_body(), headers=headers)
    replayed = await client.post(locations_url(world.a), json=location_body(), headers=headers)

    assert again.status_code == 201, again.text
    assert "Idempotent-Replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == again.json()
    assert await location_count(owner_connection, tenant=world.a) == 1


async def test_an_expired_key_may_be_reused_with_another_body(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.headers(world.a), "recycled")
    await client.post(locations_url(world.a), json=location_body(code="WH-1"), headers=headers)
    await owner_connection.execute(
        "UPDATE idempotency_key SET expires_at = now() - interval '1 second' WHERE tenant_id = $1",
        world.a,
    )

    response = await client.post(
        locations_url(world.a), json=location_body(code="WH-2"), headers=headers
    )

    assert response.status_code == 201, response.text
    assert await location_count(owner_connection, tenant=world.a) == 2


async def test_a_stored_key_lives_24_hours(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await client.post(
        locations_url(world.a), json=location_body(), headers=keyed(world.headers(world.a), "ttl")
    )

    lifetime = await owner_connection.fetchval(
        "SELECT extract(epoch FROM expires_at - created_at) FROM idempotency_key "
        "WHERE tenant_id = $1",
        world.a,
    )

    assert lifetime == 24 * 3600


@pytest.mark.parametrize("key", ["k" * 256, "k" * 300, "", "has space", "tab\tkey", "caf\u00e9"])
async def test_a_malformed_key_is_422_and_nothing_runs(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, key: str
) -> None:
    headers = [*world.headers(world.a).items(), ("Idempotency-Key", key)]

    response = await client.post(
        locations_url(world.a),
        json=location_body(),
        headers=[(name.encode(), value.encode("latin-1")) for name, value in headers],
    )

    assert error_locations(response) == [["header", "Idempotency-Key"]]
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_a_key_of_255_printable_characters_is_fine(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    headers = keyed(world.headers(world.a), "~!" + "k" * 253)

    response = await client.post(locations_url(world.a), json=location_body(), headers=headers)

    assert response.status_code == 201, response.text


# --- platform and roles -----------------------------------------------------------------------


async def test_a_repeated_tenant_creation_replays(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    body = tenant_body()
    headers = keyed(world.platform, f"create-{body['id']}")

    first = await client.post(TENANTS_URL, json=body, headers=headers)
    second = await client.post(TENANTS_URL, json=body, headers=headers)
    other_body = await client.post(TENANTS_URL, json=tenant_body(), headers=headers)

    assert first.status_code == 201, first.text
    assert (second.status_code, second.headers["Idempotent-Replayed"]) == (201, "true")
    assert second.content == first.content
    assert second.headers["Location"] == first.headers["Location"]
    assert_problem(other_body, status=422, slug="idempotency-key-reuse")
    assert await tenant_row(owner_connection, tenant_id=body["id"]) is not None
    assert f"create-{body['id']}" in await stored_keys(owner_connection, tenant=PLATFORM_SCOPE)


async def test_a_repeated_tenant_patch_replays(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = keyed(world.platform, f"patch-{world.a}") | {"If-Match": '"1"'}
    url = f"{TENANTS_URL}/{world.a}"

    first = await client.patch(url, json={"name": "Renamed"}, headers=headers)
    second = await client.patch(url, json={"name": "Renamed"}, headers=headers)

    assert first.status_code == 200, first.text
    assert (second.status_code, second.headers["Idempotent-Replayed"]) == (200, "true")
    assert second.content == first.content
    row = await tenant_row(owner_connection, tenant_id=world.a)
    assert row is not None
    assert row["version"] == 2


async def test_a_platform_key_in_flight_is_409(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    body = tenant_body()

    async with key_held_elsewhere(owner_connection, scope=PLATFORM_SCOPE, key=body["id"]):
        response = await client.post(
            TENANTS_URL, json=body, headers=keyed(world.platform, body["id"])
        )

    assert_problem(response, status=409, slug="idempotency-key-in-flight")
    assert await tenant_row(owner_connection, tenant_id=body["id"]) is None


@pytest.mark.parametrize("role", ["viewer", "clerk"])
async def test_a_forbidden_caller_never_gets_a_replay(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    first = await client.post(
        locations_url(world.a), json=location_body(), headers=keyed(world.headers(world.a), "mine")
    )
    assert first.status_code == 201, first.text

    response = await client.post(
        locations_url(world.a),
        json=location_body(),
        headers=keyed(world.headers(world.a, role), "mine"),
    )

    assert_problem(response, status=403, slug="forbidden")
    assert "Idempotent-Replayed" not in response.headers
    assert first.json()["id"] not in response.text
    assert await location_count(owner_connection, tenant=world.a) == 1


async def test_anonymous_and_other_tenant_callers_never_get_a_replay(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    first = await client.post(
        locations_url(world.a), json=location_body(), headers=keyed(world.headers(world.a), "mine")
    )

    anonymous = await client.post(
        locations_url(world.a), json=location_body(), headers={"Idempotency-Key": "mine"}
    )
    other_tenant = await client.post(
        locations_url(world.a),
        json=location_body(),
        headers=keyed(world.headers(world.b), "mine"),
    )

    assert_problem(anonymous, status=401, slug="unauthorized")
    assert_problem(other_tenant, status=403, slug="tenant-mismatch")
    for response in (anonymous, other_tenant):
        assert first.json()["id"] not in response.text


# --- fingerprints -----------------------------------------------------------------------------


def request_with(
    body: bytes, *, method: str = "POST", path: str = "/x", query: bytes = b""
) -> Request:
    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query,
        "headers": [],
    }
    return Request(scope, receive)


async def test_a_fingerprint_ignores_json_formatting_but_not_content() -> None:
    compact = await fingerprint(request_with(b'{"a":1,"b":[1,2]}'))
    spaced = await fingerprint(request_with(b'{ "b": [1, 2],\n "a": 1 }'))
    changed = await fingerprint(request_with(b'{"a":1,"b":[2,1]}'))

    assert compact == spaced
    assert changed != compact


async def test_a_fingerprint_covers_method_path_and_query() -> None:
    base = await fingerprint(request_with(b"{}"))

    assert await fingerprint(request_with(b"{}", method="PATCH")) != base
    assert await fingerprint(request_with(b"{}", path="/y")) != base
    assert await fingerprint(request_with(b"{}", query=b"a=1")) != base


async def test_a_body_that_is_not_json_is_fingerprinted_as_it_is() -> None:
    first = await fingerprint(request_with(b"\xff not json"))

    assert first == await fingerprint(request_with(b"\xff not json"))
    assert first != await fingerprint(request_with(b"\xff not json!"))
