"""`X-Request-ID` on every response: echoed when well-formed, generated otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import TenantWorld
from tests.kit.assertions import GENERATED_REQUEST_ID
from tests.location.factories import create_location, location_body, location_url, locations_url

ONE_MIB = 1024 * 1024


async def big_stream() -> AsyncIterator[bytes]:
    yield b'{"name": "'
    yield b"n" * (ONE_MIB + 1)
    yield b'"}'


async def responses_of_every_kind(
    client: httpx.AsyncClient, world: TenantWorld, headers: dict[str, str]
) -> dict[str, httpx.Response]:
    """One response of each kind the service gives, each sent with `headers`."""
    kept = await create_location(client, world, tenant=world.a, code="RID-1")
    doomed = await create_location(client, world, tenant=world.a, code="RID-2")
    admin = world.headers(world.a) | headers
    json_type = {"Content-Type": "application/json"}
    return {
        "200": await client.get(locations_url(world.a), headers=admin),
        "201": await client.post(
            locations_url(world.a), json=location_body(code="RID-3"), headers=admin
        ),
        "204": await client.delete(location_url(world.a, doomed["id"]), headers=admin),
        "304": await client.get(
            location_url(world.a, kept["id"]), headers=admin | {"If-None-Match": '"1"'}
        ),
        "404 resource": await client.get(location_url(world.a, doomed["id"]), headers=admin),
        "401": await client.get(locations_url(world.a), headers=headers),
        "403": await client.post(
            locations_url(world.a),
            json=location_body(),
            headers=world.headers(world.a, "viewer") | headers,
        ),
        "404 route": await client.get("/no/such/route", headers=headers),
        "405": await client.put(locations_url(world.a), headers=headers),
        "413 declared": await client.post(
            locations_url(world.a), content=b"x" * (ONE_MIB + 1), headers=admin | json_type
        ),
        "413 streamed": await client.post(
            locations_url(world.a), content=big_stream(), headers=admin | json_type
        ),
        "415": await client.post(locations_url(world.a), content=b"x", headers=admin),
        "422": await client.post(locations_url(world.a), json={}, headers=admin),
        "health": await client.get("/healthz", headers=headers),
    }


async def test_every_kind_of_response_carries_a_generated_request_id(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    responses = await responses_of_every_kind(client, world, {})

    statuses = {kind: response.status_code for kind, response in responses.items()}
    assert statuses == {
        "200": 200,
        "201": 201,
        "204": 204,
        "304": 304,
        "404 resource": 404,
        "401": 401,
        "403": 403,
        "404 route": 404,
        "405": 405,
        "413 declared": 413,
        "413 streamed": 413,
        "415": 415,
        "422": 422,
        "health": 200,
    }
    ids = [response.headers["X-Request-ID"] for response in responses.values()]
    assert all(GENERATED_REQUEST_ID.match(request_id) for request_id in ids), ids
    assert len(set(ids)) == len(ids)


async def test_every_kind_of_response_echoes_a_well_formed_request_id(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    responses = await responses_of_every_kind(client, world, {"X-Request-ID": "trace-42"})

    for kind, response in responses.items():
        assert response.headers.get_list("X-Request-ID") == ["trace-42"], kind


@pytest.mark.parametrize(
    "offered",
    [
        "a",
        "0123456789abcdef0123456789abcdef",
        "4b1c2d3e-aaaa-bbbb-cccc-123456789012",
        "span:1.2_3-4",
        "r" * 128,
    ],
)
async def test_a_well_formed_request_id_is_echoed(client: httpx.AsyncClient, offered: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": offered})

    assert response.headers.get_list("X-Request-ID") == [offered]


@pytest.mark.parametrize(
    "offered",
    ["", "r" * 129, "r" * 300, "has space", "semi;colon", "new\\nline", 'quote"d', "caf\u00e9"],
)
async def test_a_malformed_request_id_is_replaced(client: httpx.AsyncClient, offered: str) -> None:
    response = await client.get("/healthz", headers=[(b"X-Request-ID", offered.encode("latin-1"))])

    [request_id] = response.headers.get_list("X-Request-ID")
    assert request_id != offered
    assert GENERATED_REQUEST_ID.match(request_id)
