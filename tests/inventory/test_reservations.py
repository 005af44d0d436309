"""Reservations over HTTP: holding, reading, listing, releasing, extending; all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import inventory_rows, levels
from tests.inventory.reservation_factories import (
    PROBLEMS,
    held,
    hold,
    movements,
    place,
    reservation_rows,
    reservation_url,
    reservations_url,
    stocked_item,
)


async def snapshot(owner: Connection, tenant: str) -> dict[str, Any]:
    return {
        **await inventory_rows(owner, tenant=tenant),
        **await reservation_rows(owner, tenant=tenant),
    }


async def test_a_hold_reserves_every_line_and_reads_back(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5, south: 5}
    )
    _, mug = await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 4})
    before = datetime.now(UTC)

    response = await hold(
        client,
        world,
        tenant=world.a,
        lines=[
            {"variant_id": towel, "quantity": 3, "location_id": south},
            {"sku": "MUG", "quantity": 4},
        ],
        ttl_seconds=900,
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "held"
    assert body["lines"] == [
        {"variant_id": towel, "sku": "TOWEL", "location_id": south, "quantity": 3},
        {"variant_id": mug, "sku": "MUG", "location_id": north, "quantity": 4},
    ]
    assert body["reference"] is None
    assert body["version"] == 1
    assert body["created_by"] == "user:tester"
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(seconds=899) < expires_at < datetime.now(UTC) + timedelta(seconds=901)
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == reservation_url(world.a, body["id"])
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (5, 0, 1),
        (towel, south): (5, 3, 2),
        (mug, north): (4, 4, 2),
    }
    reference = f"reservation:{body['id']}"
    assert sorted((await movements(owner_connection, tenant=world.a))[3:]) == [
        ("reserve", 3, "other", reference),
        ("reserve", 4, "other", reference),
    ]

    read = await client.get(reservation_url(world.a, body["id"]), headers=world.headers(world.a))
    assert read.status_code == 200
    assert read.json() == body
    assert read.headers["ETag"] == '"1"'
    cached = await client.get(
        reservation_url(world.a, body["id"]),
        headers=world.headers(world.a, "viewer") | {"If-None-Match": '"1"'},
    )
    assert cached.status_code == 304


async def test_demand_for_the_same_level_is_summed_and_every_short_line_listed(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5, south: 1}
    )
    _, mug = await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 9})
    before = await snapshot(owner_connection, world.a)

    response = await hold(
        client,
        world,
        tenant=world.a,
        lines=[
            {"variant_id": towel, "quantity": 3, "location_id": north},
            {"variant_id": mug, "quantity": 9, "location_id": north},
            {"sku": "TOWEL", "quantity": 3, "location_id": north},
            {"sku": "TOWEL", "quantity": 2},
        ],
    )

    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"] == PROBLEMS + "insufficient-stock"
    assert problem["lines"] == [
        {
            "index": 2,
            "variant_id": towel,
            "location_id": north,
            "requested": 3,
            "available": 2,
        },
        {"index": 3, "variant_id": towel, "requested": 2, "available": 1},
    ]
    assert await snapshot(owner_connection, world.a) == before


async def test_a_line_without_location_goes_to_one_location_by_priority_else_is_split(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    low = await place(client, world, tenant=world.a, code="LOW", priority=0)
    high = await place(client, world, tenant=world.a, code="HIGH", priority=5)
    closed = await place(client, world, tenant=world.a, code="CLOSED", priority=9)
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={low: 10, high: 6, closed: 50}
    )
    await client.patch(
        f"/api/v1/{world.a}/locations/{closed}",
        json={"active": False},
        headers=world.headers(world.a),
    )

    whole = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 4}])
    split = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 11}])

    assert [(line["location_id"], line["quantity"]) for line in whole["lines"]] == [(high, 4)]
    # HIGH has 2 left: no location fills 11, so HIGH gives its 2 and LOW the rest
    assert [(line["location_id"], line["quantity"]) for line in split["lines"]] == [
        (high, 2),
        (low, 9),
    ]
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, low): (10, 9, 2),
        (towel, high): (6, 6, 3),
        (towel, closed): (50, 0, 1),
    }
    short = await hold(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 2}])
    assert short.status_code == 409
    assert short.json()["lines"] == [
        {"index": 0, "variant_id": towel, "requested": 2, "available": 1}
    ]


async def test_a_backorder_item_may_be_held_beyond_what_is_on_hand(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 2}, allow_backorder=True
    )

    body = await held(
        client,
        world,
        tenant=world.a,
        lines=[
            {"sku": "TOWEL", "quantity": 5},
            {"sku": "TOWEL", "quantity": 1, "location_id": south},
        ],
    )

    assert [(line["location_id"], line["quantity"]) for line in body["lines"]] == [
        (north, 5),
        (south, 1),
    ]
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (2, 5, 2),
        (towel, south): (0, 1, 1),
    }


async def test_release_gives_the_units_back_once(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    _, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    body = await held(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 2}, {"sku": "TOWEL", "quantity": 1}],
    )
    url = reservation_url(world.a, body["id"])

    released = await client.post(f"{url}/release", headers=world.headers(world.a, "clerk"))

    assert released.status_code == 200, released.text
    assert released.json()["status"] == "released"
    assert released.json()["version"] == 2
    assert released.headers["ETag"] == '"2"'
    assert await levels(owner_connection, tenant=world.a) == {(towel, north): (5, 0, 3)}
    assert (await movements(owner_connection, tenant=world.a))[-1] == (
        "release",
        3,
        "other",
        f"reservation:{body['id']}",
    )
    before = await snapshot(owner_connection, world.a)
    for action, payload in (("release", None), ("extend", {"ttl_seconds": 60})):
        again = await client.post(
            f"{url}/{action}", json=payload, headers=world.headers(world.a, "clerk")
        )
        assert again.status_code == 409, again.text
        assert again.json()["type"] == PROBLEMS + "reservation-not-held"
        assert again.json()["reservation_status"] == "released"
    assert await snapshot(owner_connection, world.a) == before


async def test_extend_moves_the_expiry_and_honours_if_match(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    body = await held(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 1}], ttl_seconds=60
    )
    url = reservation_url(world.a, body["id"])

    extended = await client.post(
        f"{url}/extend",
        json={"ttl_seconds": 7 * 86_400},
        headers=world.headers(world.a, "clerk") | {"If-Match": '"1"'},
    )

    assert extended.status_code == 200, extended.text
    assert extended.json()["status"] == "held"
    assert extended.json()["version"] == 2
    expires_at = datetime.fromisoformat(extended.json()["expires_at"])
    assert expires_at > datetime.now(UTC) + timedelta(days=6, hours=23)
    before = await snapshot(owner_connection, world.a)
    stale = await client.post(
        f"{url}/release", headers=world.headers(world.a, "clerk") | {"If-Match": '"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["type"] == PROBLEMS + "version-mismatch"
    for ttl in (0, 7 * 86_400 + 1, "60", 1.5, None):
        invalid = await client.post(
            f"{url}/extend", json={"ttl_seconds": ttl}, headers=world.headers(world.a, "clerk")
        )
        assert invalid.status_code == 422, (ttl, invalid.text)
    assert await snapshot(owner_connection, world.a) == before


async def test_list_filters_by_status_and_pages(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 9})
    line = [{"sku": "TOWEL", "quantity": 1}]
    first = await held(client, world, tenant=world.a, lines=line, ttl_seconds=300)
    second = await held(client, world, tenant=world.a, lines=line, ttl_seconds=100)
    third = await held(client, world, tenant=world.a, lines=line, ttl_seconds=200)
    await client.post(
        f"{reservation_url(world.a, second['id'])}/release", headers=world.headers(world.a)
    )
    url = reservations_url(world.a)
    viewer = world.headers(world.a, "viewer")

    everything = await client.get(url, headers=viewer)
    held_now = await client.get(url, params={"status": "held"}, headers=viewer)
    by_expiry = await client.get(url, params={"sort": "-expires_at", "limit": 2}, headers=viewer)

    assert [r["id"] for r in everything.json()["data"]] == [
        first["id"],
        second["id"],
        third["id"],
    ]
    assert [r["id"] for r in held_now.json()["data"]] == [first["id"], third["id"]]
    assert [r["id"] for r in by_expiry.json()["data"]] == [first["id"], third["id"]]
    cursor = by_expiry.json()["next_cursor"]
    assert cursor is not None
    rest = await client.get(
        url, params={"sort": "-expires_at", "limit": 2, "cursor": cursor}, headers=viewer
    )
    assert [r["id"] for r in rest.json()["data"]] == [second["id"]]
    assert rest.json()["next_cursor"] is None
    for params in ({"status": "gone"}, {"sort": "quantity"}, {"cursor": "nope"}):
        assert (await client.get(url, params=params, headers=viewer)).status_code == 422


NOWHERE = "00000000-0000-0000-0000-000000000001"


@pytest.mark.parametrize(
    ("line", "ttl", "field"),
    [
        ({"sku": "NOPE", "quantity": 1}, 60, "sku"),
        ({"variant_id": NOWHERE, "quantity": 1}, 60, "variant_id"),
        ({"sku": "TOWEL", "quantity": 1, "location_id": NOWHERE}, 60, "location_id"),
        ({"sku": "TOWEL", "quantity": 1, "location_id": "CLOSED"}, 60, "location_id"),
        ({"sku": "TOWEL", "quantity": 1, "variant_id": "MUG"}, 60, "sku"),
        ({"sku": "TOWEL", "quantity": 0}, 60, None),
        ({"sku": "TOWEL", "quantity": -1}, 60, None),
        ({"sku": "TOWEL", "quantity": "1"}, 60, None),
        ({"sku": "TOWEL", "quantity": 1.0}, 60, None),
        ({"sku": "TOWEL", "quantity": 1_000_000_001}, 60, None),
        ({"quantity": 1}, 60, None),
        ({"sku": "TOWEL", "quantity": 1, "price": "1.00"}, 60, None),
        ({"sku": "TOWEL", "quantity": 1, "variant_id": "not-a-uuid"}, 60, None),
        ({"sku": "TOWEL", "quantity": 1}, 0, None),
        ({"sku": "TOWEL", "quantity": 1}, 604_801, None),
        ({"sku": "TOWEL", "quantity": 1}, True, None),
    ],
)
async def test_bad_input_is_422_and_changes_nothing(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    line: dict[str, Any],
    ttl: Any,
    field: str | None,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    closed = await place(client, world, tenant=world.a, code="CLOSED", active=False)
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    _, mug = await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 5})
    names = {"CLOSED": closed, "MUG": mug}
    line = {
        key: names.get(value, value) if key != "sku" and isinstance(value, str) else value
        for key, value in line.items()
    }
    before = await snapshot(owner_connection, world.a)

    response = await hold(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 1}, line],
        ttl_seconds=ttl,
    )

    assert response.status_code == 422, response.text
    if field is not None:
        assert [error["loc"] for error in response.json()["errors"]] == [
            ["body", "lines", 1, field]
        ]
    assert await snapshot(owner_connection, world.a) == before


async def test_an_inactive_location_named_by_a_line_is_422(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    closed = await place(client, world, tenant=world.a, code="CLOSED", active=False)
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={})

    response = await hold(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 1, "location_id": closed}],
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "loc": ["body", "lines", 0, "location_id"],
            "msg": "This location is not active.",
            "type": "value_error",
        }
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"lines": []},
        {"lines": [{"sku": "TOWEL", "quantity": 1}] * 101},
        {},
        {"lines": [{"sku": "TOWEL", "quantity": 1}], "extra": 1},
    ],
)
async def test_malformed_bodies_are_422(
    client: httpx.AsyncClient, world: TenantWorld, body: dict[str, Any]
) -> None:
    response = await client.post(
        reservations_url(world.a), json=body, headers=world.headers(world.a, "clerk")
    )

    assert response.status_code == 422, response.text
    assert response.json()["type"] == PROBLEMS + "validation-error"


async def test_another_tenant_neither_sees_nor_changes_a_hold(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    body = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 1}])
    before = await snapshot(owner_connection, world.a)
    theirs = reservation_url(world.b, body["id"])
    b = world.headers(world.b)

    assert (await client.get(theirs, headers=b)).status_code == 404
    assert (await client.post(f"{theirs}/release", headers=b)).status_code == 404
    extend = await client.post(f"{theirs}/extend", json={"ttl_seconds": 5}, headers=b)
    assert extend.status_code == 404
    assert (await client.get(reservations_url(world.b), headers=b)).json()["data"] == []
    # tenant B's stock has no TOWEL: its SKU names nothing there
    assert (
        await hold(client, world, tenant=world.b, lines=[{"sku": "TOWEL", "quantity": 1}])
    ).status_code == 422

    url = reservation_url(world.a, body["id"])
    for method, path, payload in (
        ("GET", url, None),
        ("POST", f"{url}/release", None),
        ("POST", f"{url}/extend", {"ttl_seconds": 5}),
        ("POST", reservations_url(world.a), {"lines": [{"sku": "TOWEL", "quantity": 1}]}),
    ):
        wrong_tenant = await client.request(method, path, json=payload, headers=b)
        assert wrong_tenant.status_code == 403
        assert wrong_tenant.json()["type"] == PROBLEMS + "tenant-mismatch"
        anonymous = await client.request(method, path, json=payload)
        assert anonymous.status_code == 401
        if method == "POST":
            viewer = await client.request(
                method, path, json=payload, headers=world.headers(world.a, "viewer")
            )
            assert viewer.status_code == 403
            assert viewer.json()["type"] == PROBLEMS + "forbidden"
    assert await snapshot(owner_connection, world.a) == before


async def test_a_retried_hold_is_made_once(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    _, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    headers = world.headers(world.a, "clerk") | {"Idempotency-Key": "checkout-42"}

    first = await hold(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 2}], headers=headers
    )
    again = await hold(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 2}], headers=headers
    )

    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len((await reservation_rows(owner_connection, tenant=world.a))["reservation"]) == 1
    assert await levels(owner_connection, tenant=world.a) == {(towel, north): (5, 2, 2)}
