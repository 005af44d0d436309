"""The lifecycle over HTTP: stock follows each step, the ledger stays whole."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld
from tests.inventory.factories import inventory_rows, levels, stock
from tests.inventory.reservation_factories import place, stocked_item
from tests.kit.assertions import assert_problem, error_locations
from tests.order.factories import (
    assert_ledger_sound,
    event_data,
    events,
    moved,
    order_movements,
    order_rows,
    patch_order,
    placed,
    read_order,
)


async def snapshot(owner: Connection, tenant: str) -> dict[str, Any]:
    return {
        **await inventory_rows(owner, tenant=tenant),
        **await order_rows(owner, tenant=tenant),
        "event": await events(owner, tenant=tenant),
    }


async def two_line_order(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """An order for 3 towels (reserved at South) and 2 mugs (at North)."""
    north = await place(client, world, tenant=tenant, code="N")
    south = await place(client, world, tenant=tenant, code="S", priority=5)
    towel_item, towel = await stocked_item(
        client, world, tenant=tenant, sku="TOWEL", on_hand={north: 10, south: 10}
    )
    _, mug = await stocked_item(client, world, tenant=tenant, sku="MUG", on_hand={north: 4})
    order = await placed(
        client,
        world,
        tenant=tenant,
        lines=[
            {"sku": "TOWEL", "quantity": 3, "unit_price": "10.00"},
            {"sku": "MUG", "quantity": 2, "unit_price": "4.00"},
        ],
    )
    ids = {"north": north, "south": south, "towel": towel, "mug": mug, "towel_item": towel_item}
    return order, ids


async def test_an_order_goes_from_pending_to_delivered_and_its_stock_leaves_when_shipped(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    order, ids = await two_line_order(client, world, world.a)
    north, south, towel, mug = ids["north"], ids["south"], ids["towel"], ids["mug"]
    reserved = {
        (towel, north): (10, 0, 1),
        (towel, south): (10, 3, 2),
        (mug, north): (4, 2, 2),
    }
    assert await levels(owner_connection, tenant=world.a) == reserved

    processed = await moved(client, world, tenant=world.a, order_id=order["id"], status="processed")
    assert (processed["status"], processed["version"]) == ("processed", 2)
    assert await levels(owner_connection, tenant=world.a) == reserved
    await assert_ledger_sound(database, world.a)

    response = await patch_order(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        body={"status": "shipped", "shipment": {"carrier": "PostNL", "tracking_number": "3S123"}},
        if_match='"2"',
    )
    assert response.status_code == 200, response.text
    shipped = response.json()
    assert response.headers["ETag"] == '"3"'
    assert shipped["status"] == "shipped"
    assert {
        key: shipped["shipment"][key] for key in ("carrier", "tracking_number", "provider")
    } == {
        "carrier": "PostNL",
        "tracking_number": "3S123",
        "provider": "manual",
    }
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (10, 0, 1),
        (towel, south): (7, 0, 4),
        (mug, north): (2, 0, 4),
    }
    assert sorted(
        await order_movements(owner_connection, tenant=world.a, order_id=order["id"])
    ) == sorted(
        [
            (towel, south, "reserve", 3, "other"),
            (mug, north, "reserve", 2, "other"),
            (towel, south, "release", 3, "sale"),
            (towel, south, "subtract", 3, "sale"),
            (mug, north, "release", 2, "sale"),
            (mug, north, "subtract", 2, "sale"),
        ]
    )
    await assert_ledger_sound(database, world.a)

    delivered = await moved(client, world, tenant=world.a, order_id=order["id"], status="delivered")
    assert [(change["status"], change["actor"]) for change in delivered["status_history"]] == [
        ("pending", "user:tester"),
        ("processed", "user:tester"),
        ("shipped", "user:tester"),
        ("delivered", "user:tester"),
    ]
    assert delivered["version"] == 4
    assert delivered["shipment"] == shipped["shipment"]
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (10, 0, 1),
        (towel, south): (7, 0, 4),
        (mug, north): (2, 0, 4),
    }
    subject = f"orders/{order['id']}"
    assert await events(owner_connection, tenant=world.a) == [
        ("OrderPlaced", subject),
        ("OrderProcessed", subject),
        ("OrderShipped", subject),
        ("OrderDelivered", subject),
    ]
    data = await event_data(owner_connection, tenant=world.a)
    assert [(item["status"], item["version"]) for item in data] == [
        ("pending", 1),
        ("processed", 2),
        ("shipped", 3),
        ("delivered", 4),
    ]
    # events carry the order without its personal data (docs/privacy.md)
    current = await read_order(client, world, tenant=world.a, order_id=order["id"])
    assert data[-1] == {
        name: value
        for name, value in current.items()
        if name not in ("customer", "shipping_address")
    }
    await assert_ledger_sound(database, world.a)


async def test_cancelling_releases_the_reservations_from_pending_and_from_processed(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
) -> None:
    first, ids = await two_line_order(client, world, world.a)
    second = await placed(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "TOWEL", "quantity": 1, "unit_price": "10.00"}],
    )
    towel, mug, north, south = ids["towel"], ids["mug"], ids["north"], ids["south"]

    canceled = await moved(client, world, tenant=world.a, order_id=first["id"], status="canceled")
    await moved(client, world, tenant=world.a, order_id=second["id"], status="processed")
    await moved(client, world, tenant=world.a, order_id=second["id"], status="canceled")

    assert canceled["status"] == "canceled"
    assert canceled["lines"][0]["allocations"] == [{"location_id": south, "quantity": 3}]
    assert await levels(owner_connection, tenant=world.a) == {
        (towel, north): (10, 0, 1),
        (towel, south): (10, 0, 5),
        (mug, north): (4, 0, 3),
    }
    assert sorted(
        await order_movements(owner_connection, tenant=world.a, order_id=first["id"])
    ) == sorted(
        [
            (towel, south, "reserve", 3, "other"),
            (mug, north, "reserve", 2, "other"),
            (towel, south, "release", 3, "other"),
            (mug, north, "release", 2, "other"),
        ]
    )
    assert [kind for kind, _ in await events(owner_connection, tenant=world.a)] == [
        "OrderPlaced",
        "OrderPlaced",
        "OrderCancelled",
        "OrderProcessed",
        "OrderCancelled",
    ]
    await assert_ledger_sound(database, world.a)


async def test_illegal_transitions_are_409_naming_the_allowed_ones_and_change_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    pending, _ = await two_line_order(client, world, world.a)
    delivered = await placed(
        client, world, tenant=world.a, lines=[{"sku": "TOWEL", "quantity": 1, "unit_price": "1"}]
    )
    for status in ("processed", "shipped", "delivered"):
        await moved(client, world, tenant=world.a, order_id=delivered["id"], status=status)
    before = await snapshot(owner_connection, world.a)

    cases = [
        (pending["id"], "shipped", "pending", ["processed", "canceled"]),
        (pending["id"], "delivered", "pending", ["processed", "canceled"]),
        (pending["id"], "pending", "pending", ["processed", "canceled"]),
        (delivered["id"], "canceled", "delivered", []),
        (delivered["id"], "shipped", "delivered", []),
    ]
    for order_id, target, current, allowed in cases:
        response = await patch_order(
            client, world, tenant=world.a, order_id=order_id, body={"status": target}
        )
        problem = assert_problem(response, status=409, slug="invalid-transition")
        assert (problem["current"], problem["requested"], problem["allowed"]) == (
            current,
            target,
            allowed,
        )

    unknown = await patch_order(
        client, world, tenant=world.a, order_id=pending["id"], body={"status": "lost"}
    )
    assert error_locations(unknown) == [["body", "status"]]
    assert await snapshot(owner_connection, world.a) == before


async def test_a_stale_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order, _ = await two_line_order(client, world, world.a)
    await moved(client, world, tenant=world.a, order_id=order["id"], status="processed")
    before = await snapshot(owner_connection, world.a)

    for body in ({"status": "shipped"}, {"notes": "late"}, {"status": "canceled"}):
        response = await patch_order(
            client, world, tenant=world.a, order_id=order["id"], body=body, if_match='"1"'
        )
        assert_problem(response, status=412, slug="version-mismatch")

    assert await snapshot(owner_connection, world.a) == before


async def test_details_change_until_the_order_ships(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order, _ = await two_line_order(client, world, world.a)

    response = await patch_order(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        body={
            "notes": "gift wrap",
            "metadata": {"channel": "phone"},
            "shipping_address": {"line1": "1 Dock Road", "country": "NL"},
        },
        if_match='"1"',
    )

    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["notes"], changed["metadata"], changed["version"]) == (
        "gift wrap",
        {"channel": "phone"},
        2,
    )
    assert changed["shipping_address"]["line1"] == "1 Dock Road"
    cleared = await patch_order(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        body={"notes": None, "shipping_address": None},
    )
    assert (cleared.json()["notes"], cleared.json()["shipping_address"]) == (None, None)
    nothing = await patch_order(client, world, tenant=world.a, order_id=order["id"], body={})
    assert (nothing.status_code, nothing.json()["version"]) == (200, 3)
    await moved(client, world, tenant=world.a, order_id=order["id"], status="processed")
    await moved(client, world, tenant=world.a, order_id=order["id"], status="shipped")
    before = await snapshot(owner_connection, world.a)

    locked = await patch_order(
        client, world, tenant=world.a, order_id=order["id"], body={"notes": "too late"}
    )

    problem = assert_problem(locked, status=409, slug="order-locked")
    assert problem["order_status"] == "shipped"
    assert await snapshot(owner_connection, world.a) == before
    assert [kind for kind, _ in await events(owner_connection, tenant=world.a)] == [
        "OrderPlaced",
        "OrderUpdated",
        "OrderUpdated",
        "OrderProcessed",
        "OrderShipped",
    ]


async def test_a_shipment_goes_with_shipping_or_corrects_a_shipped_order(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order, _ = await two_line_order(client, world, world.a)
    shipment = {"carrier": "DHL", "tracking_number": "JD01"}
    before = await snapshot(owner_connection, world.a)

    early = await patch_order(
        client, world, tenant=world.a, order_id=order["id"], body={"shipment": shipment}
    )
    with_processing = await patch_order(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        body={"status": "processed", "shipment": shipment},
    )
    unknown_provider = await patch_order(
        client,
        world,
        tenant=world.a,
        order_id=order["id"],
        body={"shipment": {**shipment, "provider": "pigeon"}},
    )

    assert_problem(early, status=409, slug="order-locked")
    assert error_locations(with_processing) == [["body"]]
    assert error_locations(unknown_provider) == [["body", "shipment", "provider"]]
    assert await snapshot(owner_connection, world.a) == before

    await moved(client, world, tenant=world.a, order_id=order["id"], status="processed")
    await moved(client, world, tenant=world.a, order_id=order["id"], status="shipped")
    corrected = await patch_order(
        client, world, tenant=world.a, order_id=order["id"], body={"shipment": shipment}
    )
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["shipment"]["tracking_number"] == "JD01"
    assert corrected.json()["status"] == "shipped"


async def test_shipping_units_released_by_hand_meanwhile_is_refused_and_changes_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    order, ids = await two_line_order(client, world, world.a)
    await moved(client, world, tenant=world.a, order_id=order["id"], status="processed")
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=ids["towel_item"],
        operation="release",
        quantity=2,
        location_id=ids["south"],
    )
    before = await snapshot(owner_connection, world.a)

    response = await patch_order(
        client, world, tenant=world.a, order_id=order["id"], body={"status": "shipped"}
    )

    problem = assert_problem(response, status=409, slug="insufficient-reserved")
    assert (problem["reserved"], problem["requested"]) == (1, 3)
    assert await snapshot(owner_connection, world.a) == before
