"""The error model: every failure leaves as an RFC 9457 problem, never as a 500 for bad input."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld, new_tenant_id
from tests.kit.assertions import assert_problem, assert_validation_error, error_locations
from tests.kit.conftest import SECRET
from tests.location.factories import (
    create_location,
    location_body,
    location_count,
    location_row,
    location_url,
    locations_url,
)
from tests.tenant.factories import TENANTS_URL, tenant_row

ONE_MIB = 1024 * 1024


def body_of_size(size: int) -> bytes:
    """A location body of exactly `size` bytes (its name is padded)."""
    empty = json.dumps(location_body(name="")).encode()
    padded = location_body(name="n" * (size - len(empty)))
    encoded = json.dumps(padded).encode()
    assert len(encoded) == size
    return encoded


async def chunks_of(body: bytes, *, chunk_size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), chunk_size):
        yield body[start : start + chunk_size]


# --- body size --------------------------------------------------------------------------------


async def test_a_body_over_1_mib_with_content_length_is_413(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        locations_url(world.a),
        content=body_of_size(ONE_MIB + 1),
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )

    body = assert_problem(response, status=413, slug="payload-too-large")
    assert str(ONE_MIB) in body["detail"]
    assert response.request.headers["Content-Length"] == str(ONE_MIB + 1)
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_a_streamed_body_over_1_mib_without_content_length_is_413(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        locations_url(world.a),
        content=chunks_of(body_of_size(ONE_MIB + 1)),
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )

    assert "Content-Length" not in response.request.headers
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert_problem(response, status=413, slug="payload-too-large")
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_a_streamed_patch_over_1_mib_is_413_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)
    before = await location_row(owner_connection, tenant=world.a, location_id=created["id"])
    patch = json.dumps({"name": "n" * (ONE_MIB + 10)}).encode()

    response = await client.patch(
        location_url(world.a, created["id"]),
        content=chunks_of(patch),
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )

    assert_problem(response, status=413, slug="payload-too-large")
    assert await location_row(owner_connection, tenant=world.a, location_id=created["id"]) == before


async def test_a_body_over_1_mib_is_413_even_for_anonymous_callers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        TENANTS_URL, content=b"x" * (ONE_MIB + 1), headers={"Content-Type": "application/json"}
    )

    assert_problem(response, status=413, slug="payload-too-large")


async def test_a_streamed_tenant_body_over_1_mib_is_413(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    tenant_id = new_tenant_id()
    body = json.dumps({"id": tenant_id, "name": "n" * (ONE_MIB + 1)}).encode()

    response = await client.post(
        TENANTS_URL,
        content=chunks_of(body),
        headers=world.platform | {"Content-Type": "application/json"},
    )

    assert_problem(response, status=413, slug="payload-too-large")
    assert await tenant_row(owner_connection, tenant_id=tenant_id) is None


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_body_of_exactly_1_mib_is_read(
    client: httpx.AsyncClient, world: TenantWorld, streamed: bool
) -> None:
    body = body_of_size(ONE_MIB)

    response = await client.post(
        locations_url(world.a),
        content=chunks_of(body) if streamed else body,
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )

    assert error_locations(response) == [["body", "name"]]


# --- content type -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_options", "content_type"),
    [
        ({"content": b'{"code": "WH-1"}', "headers": {"Content-Type": "text/plain"}}, "text/plain"),
        (
            {"data": {"code": "WH-1", "name": "x", "kind": "store"}},
            "application/x-www-form-urlencoded",
        ),
        ({"files": {"file": ("a.json", b"{}")}}, "multipart/form-data"),
        (
            {"content": b"<code/>", "headers": {"Content-Type": "application/xml"}},
            "application/xml",
        ),
        ({"content": b'{"code": "WH-1"}'}, "no content type"),
        ({"content": b"{}", "headers": {"Content-Type": "application/jsonx"}}, "application/jsonx"),
    ],
)
async def test_a_body_that_is_not_json_is_415(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    request_options: dict[str, Any],
    content_type: str,
) -> None:
    headers = world.headers(world.a) | request_options.pop("headers", {})

    response = await client.post(locations_url(world.a), headers=headers, **request_options)

    body = assert_problem(response, status=415, slug="unsupported-media-type")
    assert content_type in body["detail"]
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_a_patch_that_is_not_json_is_415_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_location(client, world, tenant=world.a)
    before = await location_row(owner_connection, tenant=world.a, location_id=created["id"])

    response = await client.patch(
        location_url(world.a, created["id"]),
        data={"name": "Changed"},
        headers=world.headers(world.a),
    )

    assert_problem(response, status=415, slug="unsupported-media-type")
    assert await location_row(owner_connection, tenant=world.a, location_id=created["id"]) == before


async def test_a_tenant_body_that_is_not_json_is_415(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.post(
        TENANTS_URL, data={"id": new_tenant_id(), "name": "Form"}, headers=world.platform
    )

    assert_problem(response, status=415, slug="unsupported-media-type")


async def test_a_json_suffix_media_type_is_json(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        locations_url(world.a),
        content=json.dumps(location_body()).encode(),
        headers=world.headers(world.a) | {"Content-Type": "application/merge-patch+json"},
    )

    assert response.status_code == 201, response.text
    assert await location_count(owner_connection, tenant=world.a) == 1


# --- malformed and invalid bodies -------------------------------------------------------------


async def test_malformed_json_is_422_with_the_position(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        locations_url(world.a),
        content=b'{"code": "A1",}',
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )

    assert assert_validation_error(response) == [
        {"loc": ["body", 14], "msg": "JSON decode error", "type": "json_invalid"}
    ]
    assert await location_count(owner_connection, tenant=world.a) == 0


@pytest.mark.parametrize(
    "content",
    [
        '{"code": "WH-1", "name": "caf\u00e9", "kind": "store"}'.encode("latin-1"),
        b"\xff\xfe\xfa",
        b"[" * 100_000,
        b'{"a":' * 50_000,
    ],
)
async def test_a_body_that_cannot_be_decoded_is_422_json_invalid(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, content: bytes
) -> None:
    response = await client.post(
        locations_url(world.a),
        content=content,
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )

    [error] = assert_validation_error(response)
    assert (error["loc"], error["type"]) == (["body"], "json_invalid")
    assert await location_count(owner_connection, tenant=world.a) == 0


@pytest.mark.parametrize(
    ("content", "location"),
    [
        (b"[]", ["body"]),
        (b'"WH-1"', ["body"]),
        (b"42", ["body"]),
        (b"null", ["body"]),
        (b"", ["body"]),
        (
            b'{"code": "WH-1", "name": "x", "kind": "store", "priority": -5000}',
            ["body", "priority"],
        ),
        (
            b'{"code": "WH-1", "name": "x", "kind": "store", "priority": 1e400}',
            ["body", "priority"],
        ),
        (b'{"code": "WH-1", "name": "x", "kind": "store", "priority": NaN}', ["body", "priority"]),
        (b'{"code": "WH-1", "name": "x", "kind": "shed"}', ["body", "kind"]),
        (b'{"code": "WH-1", "name": ["x"], "kind": "store"}', ["body", "name"]),
        (b'{"code": "WH-1", "name": "\\ud800", "kind": "store"}', ["body", "name"]),
    ],
)
async def test_wrong_shapes_types_and_values_are_422_with_errors(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    content: bytes,
    location: list[str],
) -> None:
    response = await client.post(
        locations_url(world.a),
        content=content,
        headers=world.headers(world.a) | {"Content-Type": "application/json"},
    )

    assert location in error_locations(response)
    assert await location_count(owner_connection, tenant=world.a) == 0


async def test_every_invalid_field_is_reported_at_once(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.post(
        locations_url(world.a),
        json={"code": "bad code", "kind": "shed", "priority": "high", "extra": 1},
        headers=world.headers(world.a),
    )

    assert sorted(map(tuple, error_locations(response))) == [
        ("body", "code"),
        ("body", "extra"),
        ("body", "kind"),
        ("body", "name"),
        ("body", "priority"),
    ]


async def test_text_the_database_cannot_store_is_422_even_past_the_schemas(
    failing_client: httpx.AsyncClient,
) -> None:
    response = await failing_client.get("/test-only/unstorable")

    [error] = assert_validation_error(response)
    assert error["type"] == "string_unstorable"


# --- routing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/nope", "/api/v1", "/api/v1/nowhere/at/all", "/api/v1/acme/locations/x/y/z"]
)
async def test_an_unknown_route_is_a_404_problem(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert_problem(response, status=404, slug="not-found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/acme/locations", {"GET", "POST"}),
        ("DELETE", "/api/v1/tenants", {"GET", "POST"}),
        ("POST", "/api/v1/tenants/acme", {"GET", "PATCH", "DELETE"}),
        (
            "PUT",
            "/api/v1/acme/locations/0b0c6f0e-4c55-4fb8-9b6e-4b2d4d1d4e0a",
            {"GET", "PATCH", "DELETE"},
        ),
        ("POST", "/healthz", {"GET"}),
    ],
)
async def test_a_wrong_method_is_a_405_problem_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)

    assert_problem(response, status=405, slug="method-not-allowed")
    assert {name.strip() for name in response.headers["Allow"].split(",")} == allowed


# --- the last resort --------------------------------------------------------------------------


async def test_an_unexpected_exception_is_a_generic_500_without_internals(
    failing_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="shelfkeeper"):
        response = await failing_client.get("/test-only/crash", headers={"X-Request-ID": "crash-1"})

    body = assert_problem(response, status=500, slug="internal-error")
    assert body == {
        "type": "https://shelfkeeper.dev/problems/internal-error",
        "title": "Internal server error",
        "status": 500,
        "detail": "Something went wrong.",
        "instance": "/test-only/crash",
    }
    for hidden in (SECRET, "RuntimeError", "Traceback", "crash()"):
        assert hidden not in response.text
    assert response.headers["X-Request-ID"] == "crash-1"
    [record] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert record.exc_info is not None
    assert record.__dict__["request_id"] == "crash-1"
    assert record.getMessage() == "unhandled error in request crash-1"


async def test_a_crash_after_a_write_rolls_the_write_back(
    failing_client: httpx.AsyncClient, owner_connection: Connection
) -> None:
    tenant_id = new_tenant_id()

    response = await failing_client.post(f"/test-only/write-then-crash/{tenant_id}")

    assert_problem(response, status=500, slug="internal-error")
    assert await tenant_row(owner_connection, tenant_id=tenant_id) is None


async def test_expected_errors_are_not_logged_as_crashes(
    client: httpx.AsyncClient, world: TenantWorld, caplog: pytest.LogCaptureFixture
) -> None:
    await create_location(client, world, tenant=world.a)

    with caplog.at_level(logging.INFO, logger="shelfkeeper"):
        responses = [
            await client.post(
                locations_url(world.a), json=location_body(), headers=world.headers(world.a)
            ),
            await client.get(locations_url(world.a)),
            await client.get("/nope"),
            await client.post(locations_url(world.a), content=b"{", headers=world.headers(world.a)),
        ]

    assert [response.status_code for response in responses] == [409, 401, 404, 415]
    assert [record for record in caplog.records if record.levelno >= logging.ERROR] == []
