"""Keyset pagination of `GET /api/v1/{tenantId}/locations` through every sort order."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.conftest import TenantWorld
from tests.kit.assertions import assert_validation_error, error_locations
from tests.location.factories import create_location, location_url, locations_url

SORTS = [
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "code",
    "-code",
    "name",
    "-name",
]

# Codes, names and creation order disagree, and two names tie (broken by id).
SEEDS = [
    ("C-3", "Mango"),
    ("A-1", "Apple"),
    ("G-7", "Kiwi"),
    ("B-2", "Apple"),
    ("F-6", "Banana"),
    ("D-4", "Cherry"),
    ("E-5", "Date"),
]


async def seed_locations(client: httpx.AsyncClient, world: TenantWorld, *, tenant: str) -> None:
    """Seven locations; two are renamed afterwards so `updated_at` has an order of its own."""
    created = [
        await create_location(client, world, tenant=tenant, code=code, name=name)
        for code, name in SEEDS
    ]
    for location in (created[4], created[1]):
        response = await client.patch(
            location_url(tenant, location["id"]),
            json={"priority": 1},
            headers=world.headers(tenant),
        )
        assert response.status_code == 200, response.text


def sort_key(sort: str, location: dict[str, Any]) -> tuple[Any, uuid.UUID]:
    field = sort.removeprefix("-")
    value = location[field]
    if field.endswith("_at"):
        value = datetime.fromisoformat(value)
    return value, uuid.UUID(location["id"])


def expected_order(sort: str, locations: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(locations, key=lambda location: sort_key(sort, location))
    if sort.startswith("-"):
        ordered.reverse()
    return [location["code"] for location in ordered]


async def all_locations(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str
) -> list[dict[str, Any]]:
    response = await client.get(
        locations_url(tenant), params={"limit": 200}, headers=world.headers(tenant)
    )
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def walk(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    limit: int,
    **params: str,
) -> list[list[str]]:
    """Every page's codes, following `next_cursor` to the end."""
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": limit, **params}
        if cursor is not None:
            query["cursor"] = cursor
        response = await client.get(
            locations_url(tenant), params=query, headers=world.headers(tenant, "viewer")
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"data", "next_cursor"}
        pages.append([location["code"] for location in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) <= 10, "pagination does not end"


def craft_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("sort", SORTS)
async def test_paging_through_every_sort_shows_each_row_once_in_order(
    client: httpx.AsyncClient, world: TenantWorld, sort: str
) -> None:
    await seed_locations(client, world, tenant=world.a)
    await seed_locations(client, world, tenant=world.b)
    locations = await all_locations(client, world, tenant=world.a)

    pages = await walk(client, world, tenant=world.a, limit=3, sort=sort)

    assert [len(page) for page in pages] == [3, 3, 1]
    codes = [code for page in pages for code in page]
    assert codes == expected_order(sort, locations)
    assert sorted(codes) == sorted(code for code, _ in SEEDS)


def test_the_seeded_orders_really_differ() -> None:
    locations = [
        {
            "id": str(uuid.UUID(int=index)),
            "code": code,
            "name": name,
            "created_at": f"2026-01-01T00:00:0{index}+00:00",
            "updated_at": f"2026-01-01T00:00:0{index}+00:00",
        }
        for index, (code, name) in enumerate(SEEDS)
    ]
    orders = {sort: expected_order(sort, locations) for sort in ("created_at", "code", "name")}

    assert len({tuple(order) for order in orders.values()}) == 3
    assert orders["name"][:2] == ["A-1", "B-2"]


async def test_the_default_sort_is_oldest_first(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    await seed_locations(client, world, tenant=world.a)

    pages = await walk(client, world, tenant=world.a, limit=4)

    assert pages == [["C-3", "A-1", "G-7", "B-2"], ["F-6", "D-4", "E-5"]]


async def test_a_page_that_ends_the_list_has_no_cursor(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    await seed_locations(client, world, tenant=world.a)

    assert await walk(client, world, tenant=world.a, limit=7, sort="code") == [
        ["A-1", "B-2", "C-3", "D-4", "E-5", "F-6", "G-7"]
    ]
    assert await walk(client, world, tenant=world.a, limit=6, sort="code") == [
        ["A-1", "B-2", "C-3", "D-4", "E-5", "F-6"],
        ["G-7"],
    ]


async def test_a_cursor_keeps_the_filters(client: httpx.AsyncClient, world: TenantWorld) -> None:
    for index in range(5):
        await create_location(
            client, world, tenant=world.a, code=f"S-{index}", kind="store", active=index != 2
        )
        await create_location(client, world, tenant=world.a, code=f"W-{index}", kind="warehouse")

    pages = await walk(client, world, tenant=world.a, limit=2, sort="-code", kind="store")
    active_pages = await walk(
        client, world, tenant=world.a, limit=2, sort="code", kind="store", active="true"
    )

    assert pages == [["S-4", "S-3"], ["S-2", "S-1"], ["S-0"]]
    assert active_pages == [["S-0", "S-1"], ["S-3", "S-4"]]


async def test_limit_200_is_allowed(client: httpx.AsyncClient, world: TenantWorld) -> None:
    await create_location(client, world, tenant=world.a)

    response = await client.get(
        locations_url(world.a), params={"limit": 200}, headers=world.headers(world.a)
    )

    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 1


@pytest.mark.parametrize("limit", ["0", "201", "-1", "1.5", "ten", ""])
async def test_a_limit_outside_1_to_200_is_422(
    client: httpx.AsyncClient, world: TenantWorld, limit: str
) -> None:
    response = await client.get(
        locations_url(world.a), params={"limit": limit}, headers=world.headers(world.a)
    )

    assert error_locations(response) == [["query", "limit"]]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        "é",
        "x" * 1025,
        craft_cursor("code", "A-1"),
        craft_cursor("code", "A-1", 42),
        craft_cursor("code", "A-1", "not-a-uuid"),
        craft_cursor("code", 42, str(uuid.uuid4())),
        craft_cursor("code", "A\u0000", str(uuid.uuid4())),
        base64.urlsafe_b64encode(b'{"sort": "code"}').decode(),
        base64.urlsafe_b64encode(b"7").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
async def test_a_cursor_that_is_not_ours_is_422(
    client: httpx.AsyncClient, world: TenantWorld, cursor: str
) -> None:
    response = await client.get(
        locations_url(world.a),
        params={"sort": "code", "cursor": cursor},
        headers=world.headers(world.a),
    )

    assert error_locations(response) == [["query", "cursor"]]


@pytest.mark.parametrize(
    "value",
    [
        "not a time",
        "2026-01-01T00:00:00",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        42,
        None,
    ],
)
async def test_a_cursor_with_an_impossible_timestamp_is_422(
    client: httpx.AsyncClient, world: TenantWorld, value: Any
) -> None:
    cursor = craft_cursor("created_at", value, str(uuid.uuid4()))

    response = await client.get(
        locations_url(world.a), params={"cursor": cursor}, headers=world.headers(world.a)
    )

    assert error_locations(response) == [["query", "cursor"]]


@pytest.mark.parametrize(
    ("issued_for", "used_with"),
    [
        ("code", "name"),
        ("code", "-code"),
        ("created_at", "-created_at"),
        ("-updated_at", "updated_at"),
        ("name", "created_at"),
    ],
)
async def test_a_cursor_from_another_sort_is_422(
    client: httpx.AsyncClient, world: TenantWorld, issued_for: str, used_with: str
) -> None:
    await seed_locations(client, world, tenant=world.a)
    first = await client.get(
        locations_url(world.a),
        params={"limit": 2, "sort": issued_for},
        headers=world.headers(world.a),
    )
    cursor = first.json()["next_cursor"]
    assert cursor is not None

    response = await client.get(
        locations_url(world.a),
        params={"limit": 2, "sort": used_with, "cursor": cursor},
        headers=world.headers(world.a),
    )

    assert error_locations(response) == [["query", "cursor"]]


@pytest.mark.parametrize("sort", ["priority", "-id", "tenant_id", "", "-", "code;drop", "--code"])
async def test_an_unknown_sort_field_is_422(
    client: httpx.AsyncClient, world: TenantWorld, sort: str
) -> None:
    response = await client.get(
        locations_url(world.a), params={"sort": sort}, headers=world.headers(world.a)
    )

    [error] = assert_validation_error(response)
    assert error["loc"] == ["query", "sort"]
    assert "code, created_at, name, updated_at" in error["msg"]
