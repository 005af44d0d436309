"""Concurrent orders over scarce, overlapping stock: no oversell, no deadlock, no partial
reservation left behind, gapless numbers, and a ledger that still verifies."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from typing import Any

import httpx

from shelfkeeper.db.database import Connection, Database
from tests.conftest import TenantWorld, bearer
from tests.inventory.factories import levels
from tests.inventory.reservation_factories import place, stocked_item
from tests.inventory.test_ledger import run_verify
from tests.order.factories import PROBLEMS, assert_ledger_sound, order_body, order_url, orders_url

Level = tuple[str, str]


def random_orders(count: int, *, seed: int, places: dict[str, str]) -> list[dict[str, Any]]:
    """`count` orders of 2 or 3 lines over four SKUs, some lines naming a location."""
    chooser = random.Random(seed)
    bodies = []
    for _ in range(count):
        lines = []
        for sku in chooser.sample(["A", "B", "C", "D"], chooser.choice([2, 3])):
            line: dict[str, Any] = {
                "sku": sku,
                "quantity": chooser.randint(1, 3),
                "unit_price": "2.50",
            }
            if chooser.random() < 0.2:
                line["location_id"] = places[chooser.choice(sorted(places))]
            lines.append(line)
        bodies.append(order_body(lines=lines))
    return bodies


def allocated(orders: list[dict[str, Any]], variant_of: dict[str, str]) -> Counter[Level]:
    """Units the orders hold per level; each line's allocations add up to its quantity."""
    held: Counter[Level] = Counter()
    for order in orders:
        for line in order["lines"]:
            assert sum(piece["quantity"] for piece in line["allocations"]) == line["quantity"]
            for piece in line["allocations"]:
                held[(variant_of[line["sku"]], piece["location_id"])] += piece["quantity"]
    return held


async def race(
    client: httpx.AsyncClient, calls: list[tuple[str, str, dict[str, Any]]], token: str
) -> list[httpx.Response]:
    return await asyncio.gather(
        *(
            client.request(method, url, json=body, headers=bearer(token))
            for method, url, body in calls
        )
    )


async def test_forty_orders_race_for_scarce_overlapping_stock(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    database: Database,
    database_url: str,
) -> None:
    places = {
        "N": await place(client, world, tenant=world.a, code="N"),
        "S": await place(client, world, tenant=world.a, code="S", priority=1),
        "E": await place(client, world, tenant=world.a, code="E", priority=1),
    }
    on_hand = {
        "A": {places["N"]: 8, places["S"]: 5},
        "B": {places["S"]: 6, places["E"]: 6},
        "C": {places["N"]: 9},
        "D": {places["E"]: 5, places["N"]: 4},
    }
    variant_of = {}
    for sku, units in on_hand.items():
        _, variant_of[sku] = await stocked_item(
            client, world, tenant=world.a, sku=sku, on_hand=units
        )
    initial = await levels(owner_connection, tenant=world.a)
    token = world.token(world.a, "clerk")

    responses = await race(
        client,
        [("POST", orders_url(world.a), body) for body in random_orders(40, seed=7, places=places)],
        token,
    )

    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code >= 500]
    assert statuses[201] >= 5, statuses
    assert statuses[409] >= 5, statuses
    refused = [response.json() for response in responses if response.status_code == 409]
    assert {problem["type"] for problem in refused} == {PROBLEMS + "insufficient-stock"}
    accepted = [response.json() for response in responses if response.status_code == 201]
    assert sorted(order["number"] for order in accepted) == list(range(1, len(accepted) + 1))
    current = await levels(owner_connection, tenant=world.a)
    held = allocated(accepted, variant_of)
    for level, (stocked, reserved, _) in current.items():
        assert stocked == initial[level][0], level
        assert reserved == held[level], level  # nothing reserved but what accepted orders hold
        assert 0 <= reserved <= stocked, level
    await assert_ledger_sound(database, world.a)

    # Then, all at once: half the accepted orders ship, the others are canceled, and twenty
    # new orders race for what that frees.
    half = len(accepted) // 2
    shipping, canceling = accepted[:half], accepted[half:]
    processed = await race(
        client,
        [("PATCH", order_url(world.a, order["id"]), {"status": "processed"}) for order in shipping],
        token,
    )
    assert {response.status_code for response in processed} == {200}
    second = await race(
        client,
        [("PATCH", order_url(world.a, order["id"]), {"status": "shipped"}) for order in shipping]
        + [
            ("PATCH", order_url(world.a, order["id"]), {"status": "canceled"})
            for order in canceling
        ]
        + [
            ("POST", orders_url(world.a), body) for body in random_orders(20, seed=8, places=places)
        ],
        token,
    )

    changed = second[: len(accepted)]
    assert {response.status_code for response in changed} == {200}, [r.text for r in changed]
    new = second[len(accepted) :]
    assert {response.status_code for response in new} <= {201, 409}, [r.text for r in new]
    placed_now = [response.json() for response in new if response.status_code == 201]
    numbers = sorted(order["number"] for order in [*accepted, *placed_now])
    assert numbers == list(range(1, len(accepted) + len(placed_now) + 1))
    shipped = allocated(shipping, variant_of)
    still_held = allocated(placed_now, variant_of)
    final = await levels(owner_connection, tenant=world.a)
    for level, (stocked, reserved, _) in final.items():
        assert stocked == initial[level][0] - shipped[level], level
        assert reserved == still_held[level], level
    await assert_ledger_sound(database, world.a)
    verified = await run_verify(database_url, "--tenant", world.a)
    assert verified.exit_code == 0, verified.output


async def test_concurrent_orders_in_two_tenants_number_independently(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    tokens = {}
    for tenant in (world.a, world.b):
        north = await place(client, world, tenant=tenant, code="N")
        for sku in ("A", "B"):
            await stocked_item(client, world, tenant=tenant, sku=sku, on_hand={north: 1000})
        tokens[tenant] = world.token(tenant, "clerk")
    body = order_body(
        lines=[
            {"sku": "A", "quantity": 1, "unit_price": "1"},
            {"sku": "B", "quantity": 1, "unit_price": "1"},
        ]
    )

    responses = await asyncio.gather(
        *(
            client.post(orders_url(tenant), json=body, headers=bearer(tokens[tenant]))
            for tenant in [world.a, world.b] * 15
        )
    )

    numbers: dict[str, list[int]] = defaultdict(list)
    for response in responses:
        assert response.status_code == 201, response.text
        numbers[response.request.url.path.split("/")[3]].append(response.json()["number"])
    assert {tenant: sorted(found) for tenant, found in numbers.items()} == {
        world.a: list(range(1, 16)),
        world.b: list(range(1, 16)),
    }
