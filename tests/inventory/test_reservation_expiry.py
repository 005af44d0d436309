"""Expiry: a hold past its expiry stops counting at once, sweeper or not; converting a hold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.inventory import reservation_service
from shelfkeeper.inventory.errors import ReservationNotFound, ReservationNotHeld
from shelfkeeper.inventory.ledger import find_drift
from shelfkeeper.inventory.reservation_schemas import ReservationCreate, ReservationLine
from tests.conftest import TenantWorld
from tests.inventory.factories import (
    adjust,
    adjustments_url,
    inventory_rows,
    levels,
    transfers_url,
)
from tests.inventory.reservation_factories import (
    PROBLEMS,
    clerk,
    expire,
    held,
    hold,
    movements,
    place,
    reservation_rows,
    reservation_url,
    reservations_url,
    stocked_item,
    stored_status,
)


async def no_drift(database: Database, tenant: str) -> None:
    async with database.tenant_transaction(tenant) as db:
        assert await find_drift(db, tenant_id=tenant) == []


async def test_an_expired_hold_stops_counting_for_a_new_hold_at_once(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    _, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    old = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 5}])
    await expire(owner_connection, tenant=world.a, reservation_id=old["id"])

    shown = await client.get(
        reservation_url(world.a, old["id"]),
        headers=world.headers(world.a, "viewer") | {"If-None-Match": '"1"'},
    )
    assert shown.status_code == 200  # changed without a new version: never 304
    assert shown.json()["status"] == "expired"
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=old["id"]) == "held"
    listed = await client.get(
        reservations_url(world.a), params={"status": "expired"}, headers=world.headers(world.a)
    )
    assert [r["id"] for r in listed.json()["data"]] == [old["id"]]

    new = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 3}])

    assert new["status"] == "held"
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=old["id"]) == (
        "expired"
    )
    assert await levels(owner_connection, tenant=world.a) == {(towel, north): (5, 3, 4)}
    assert (await movements(owner_connection, tenant=world.a))[1:] == [
        ("reserve", 5, "other", f"reservation:{old['id']}"),
        ("release", 5, "expired", f"reservation:{old['id']}"),
        ("reserve", 3, "other", f"reservation:{new['id']}"),
    ]
    actor = await owner_connection.fetchval(
        "SELECT actor FROM stock_movement WHERE tenant_id = $1 AND reason = 'expired'", world.a
    )
    assert actor == "system:expiry"
    after = await client.get(reservation_url(world.a, old["id"]), headers=world.headers(world.a))
    assert (after.json()["status"], after.json()["version"]) == ("expired", 2)
    await no_drift(database, world.a)


async def test_every_level_of_an_expired_hold_is_released(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 2, south: 2}
    )
    _, mug = await stocked_item(client, world, tenant=world.a, sku="MUG", on_hand={north: 1})
    old = await held(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 4}, {"sku": "MUG", "quantity": 1}],
    )
    await expire(owner_connection, tenant=world.a, reservation_id=old["id"])

    new = await held(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 2, "location_id": south}],
    )

    assert new["lines"][0]["location_id"] == south
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (2, 0, 3),
        (towel, south): (2, 2, 4),
        (mug, north): (1, 0, 3),
    }
    expired = [m for m in await movements(owner_connection, tenant=world.a) if m[2] == "expired"]
    assert sorted(expired) == [
        ("release", 1, "expired", f"reservation:{old['id']}"),
        ("release", 2, "expired", f"reservation:{old['id']}"),
        ("release", 2, "expired", f"reservation:{old['id']}"),
    ]
    await no_drift(database, world.a)


async def test_a_hold_that_has_not_expired_keeps_its_units(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    _, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    old = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 4}])
    before = {
        **await inventory_rows(owner_connection, tenant=world.a),
        **await reservation_rows(owner_connection, tenant=world.a),
    }

    refused = await hold(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 2}])

    assert refused.status_code == 409
    assert refused.json()["lines"] == [
        {"index": 0, "variant_id": towel, "requested": 2, "available": 1}
    ]
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=old["id"]) == "held"
    assert {
        **await inventory_rows(owner_connection, tenant=world.a),
        **await reservation_rows(owner_connection, tenant=world.a),
    } == before


async def test_a_request_short_even_after_expiry_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    _, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    old = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 4}])
    await expire(owner_connection, tenant=world.a, reservation_id=old["id"])
    before = {
        **await inventory_rows(owner_connection, tenant=world.a),
        **await reservation_rows(owner_connection, tenant=world.a),
    }

    refused = await hold(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 6}])

    # the expired hold no longer counts (5 available), but 6 are asked: nothing is written,
    # not even the expiry (the sweeper will do that)
    assert refused.status_code == 409
    assert refused.json()["lines"] == [
        {"index": 0, "variant_id": towel, "requested": 6, "available": 5}
    ]
    assert {
        **await inventory_rows(owner_connection, tenant=world.a),
        **await reservation_rows(owner_connection, tenant=world.a),
    } == before


STOCK_REQUESTS = ["reserve", "subtract", "set", "batch", "transfer"]


@pytest.mark.parametrize("kind", STOCK_REQUESTS)
async def test_a_stock_change_that_needs_an_expired_holds_units_succeeds(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
    kind: str,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S")
    item, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    old = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 4}])
    await expire(owner_connection, tenant=world.a, reservation_id=old["id"])
    clerk_headers = world.headers(world.a, "clerk")

    response: httpx.Response
    expected: dict[tuple[str, str], tuple[int, int, int]]
    if kind in ("reserve", "subtract", "set"):
        quantity = {"reserve": 3, "subtract": 3, "set": 0}[kind]
        response = await adjust(
            client,
            world,
            tenant=world.a,
            item_id=item,
            operation=kind,
            quantity=quantity,
            location_id=north,
        )
        expected = {
            (towel, north): {"reserve": (5, 3, 4), "subtract": (2, 0, 4), "set": (0, 0, 4)}[kind]
        }
    elif kind == "batch":
        body: dict[str, Any] = {
            "adjustments": [
                {"item_id": item, "operation": "reserve", "quantity": 2, "location_id": north},
                {"item_id": item, "operation": "subtract", "quantity": 2, "location_id": north},
            ]
        }
        response = await client.post(adjustments_url(world.a), json=body, headers=clerk_headers)
        expected = {(towel, north): (3, 2, 5)}
    else:
        body = {
            "variant_id": towel,
            "from_location_id": north,
            "to_location_id": south,
            "quantity": 5,
        }
        response = await client.post(transfers_url(world.a), json=body, headers=clerk_headers)
        expected = {(towel, north): (0, 0, 4), (towel, south): (5, 0, 1)}

    assert response.status_code in (200, 201), response.text
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=old["id"]) == (
        "expired"
    )
    assert await levels(owner_connection, tenant=world.a) == expected
    assert ("release", 4, "expired", f"reservation:{old['id']}") in await movements(
        owner_connection, tenant=world.a
    )
    await no_drift(database, world.a)


async def test_a_stock_change_naming_a_version_does_not_expire_holds(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    item, _ = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    old = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 4}])
    await expire(owner_connection, tenant=world.a, reservation_id=old["id"])

    response = await adjust(
        client,
        world,
        tenant=world.a,
        item_id=item,
        operation="reserve",
        quantity=3,
        location_id=north,
        expected_version=2,
    )

    assert response.status_code == 409
    assert response.json()["type"] == PROBLEMS + "insufficient-stock"
    assert response.json()["available"] == 1
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=old["id"]) == "held"


async def test_an_expired_hold_can_be_neither_released_nor_extended(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    old = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 4}])
    await expire(owner_connection, tenant=world.a, reservation_id=old["id"])
    before = {
        **await inventory_rows(owner_connection, tenant=world.a),
        **await reservation_rows(owner_connection, tenant=world.a),
    }
    url = reservation_url(world.a, old["id"])

    for action, payload in (("release", None), ("extend", {"ttl_seconds": 600})):
        response = await client.post(
            f"{url}/{action}", json=payload, headers=world.headers(world.a, "clerk")
        )
        assert response.status_code == 409, response.text
        assert response.json()["type"] == PROBLEMS + "reservation-not-held"
        assert response.json()["reservation_status"] == "expired"

    assert {
        **await inventory_rows(owner_connection, tenant=world.a),
        **await reservation_rows(owner_connection, tenant=world.a),
    } == before


async def test_the_sweeper_expires_due_holds_and_releases_their_units(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    _, towel = await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 9})
    async with database.tenant_transaction(world.a) as db:
        now = await db.fetchval("SELECT now()")
        short = [
            await reservation_service.create(
                db,
                clerk(world.a),
                body=ReservationCreate.model_validate(
                    {"lines": [{"sku": "TOWEL", "quantity": 2}], "ttl_seconds": 60}
                ),
                now=now,
            )
            for _ in range(3)
        ]
        long = await reservation_service.create(
            db,
            clerk(world.a),
            body=ReservationCreate.model_validate(
                {"lines": [{"sku": "TOWEL", "quantity": 1}], "ttl_seconds": 600}
            ),
            now=now,
        )
    assert {r.expires_at for r in short} == {now + timedelta(seconds=60)}
    later = now + timedelta(seconds=61)
    async with database.tenant_transaction(world.a) as db:
        assert (
            await reservation_service.get(db, clerk(world.a), reservation_id=long.id)
        ).status == ("held")
        shown = await reservation_service.get(
            db, clerk(world.a), reservation_id=short[0].id, now=later
        )
        assert shown.status == "expired"

    async with database.tenant_transaction(world.a) as db:
        first = await reservation_service.expire_due(db, tenant_id=world.a, now=later, limit=2)
    async with database.tenant_transaction(world.a) as db:
        second = await reservation_service.expire_due(db, tenant_id=world.a, now=later, limit=2)
    async with database.tenant_transaction(world.a) as db:
        third = await reservation_service.expire_due(db, tenant_id=world.a, now=later)

    assert (first, second, third) == (2, 1, 0)
    assert [
        await stored_status(owner_connection, tenant=world.a, reservation_id=str(r.id))
        for r in (*short, long)
    ] == ["expired", "expired", "expired", "held"]
    assert await levels(owner_connection, tenant=world.a) == {(towel, north): (9, 1, 8)}
    await no_drift(database, world.a)


async def test_convert_hands_the_held_units_to_an_order_without_a_gap(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    south = await place(client, world, tenant=world.a, code="S", priority=1)
    _, towel = await stocked_item(
        client, world, tenant=world.a, sku="TOWEL", on_hand={north: 2, south: 2}
    )
    hold_body = await held(client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 4}])
    reservation_id = UUID(hold_body["id"])
    before = await movements(owner_connection, tenant=world.a)

    async with database.tenant_transaction(world.a) as db:
        lines = await reservation_service.convert(
            db, clerk(world.a), reservation_id=reservation_id, reference="order:1001"
        )

    assert lines == [
        ReservationLine(variant_id=UUID(towel), sku="TOWEL", location_id=UUID(south), quantity=2),
        ReservationLine(variant_id=UUID(towel), sku="TOWEL", location_id=UUID(north), quantity=2),
    ]
    shown = await client.get(
        reservation_url(world.a, hold_body["id"]), headers=world.headers(world.a)
    )
    assert (shown.json()["status"], shown.json()["reference"], shown.json()["version"]) == (
        "converted",
        "order:1001",
        2,
    )
    # the units stay reserved (now the order's): no movement, nothing released
    assert await movements(owner_connection, tenant=world.a) == before
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (2, 2, 2),
        (towel, south): (2, 2, 2),
    }
    # a converted hold never expires, and cannot be released or converted again
    await expire(owner_connection, tenant=world.a, reservation_id=hold_body["id"])
    async with database.tenant_transaction(world.a) as db:
        assert await reservation_service.expire_due(db, tenant_id=world.a) == 0
    released = await client.post(
        f"{reservation_url(world.a, hold_body['id'])}/release", headers=world.headers(world.a)
    )
    assert released.status_code == 409
    async with database.tenant_transaction(world.a) as db:
        with pytest.raises(ReservationNotHeld):
            await reservation_service.convert(
                db, clerk(world.a), reservation_id=reservation_id, reference="order:1002"
            )
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (2, 2, 2),
        (towel, south): (2, 2, 2),
    }


async def test_an_expired_or_foreign_hold_cannot_be_converted(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    north = await place(client, world, tenant=world.a, code="N")
    await stocked_item(client, world, tenant=world.a, sku="TOWEL", on_hand={north: 5})
    body = await held(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 1}], ttl_seconds=60
    )
    reservation_id = UUID(body["id"])

    async with database.tenant_transaction(world.a) as db:
        now = await db.fetchval("SELECT now()")
        with pytest.raises(ReservationNotHeld):
            await reservation_service.convert(
                db,
                clerk(world.a),
                reservation_id=reservation_id,
                reference="order:1",
                now=now + timedelta(seconds=61),
            )
    async with database.tenant_transaction(world.b) as db:
        with pytest.raises(ReservationNotFound):
            await reservation_service.convert(
                db, clerk(world.b), reservation_id=reservation_id, reference="order:1"
            )
    assert await stored_status(owner_connection, tenant=world.a, reservation_id=body["id"]) == (
        "held"
    )
