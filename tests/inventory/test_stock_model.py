"""Property-based: random stock operations agree with a tiny in-Python model, and the ledger
replays to the stored levels.

How hypothesis meets the async, session-scoped database: the async test hands the whole
hypothesis run to a worker thread (`asyncio.to_thread`). Hypothesis drives the *sync*
`@given` function there as usual (generation, shrinking, the example database), and each
example sends its requests back to the test's event loop with
`asyncio.run_coroutine_threadsafe(...).result()`, so they use the same app, pool and owner
connection as every other test. The event loop is free meanwhile (it only awaits the
thread), and a failing example raises inside hypothesis, so it shrinks like any other.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.inventory.factories import adjust, create_item, new_location

T = TypeVar("T")

OPERATIONS = ("add", "subtract", "reserve", "release", "set")


@dataclass(frozen=True)
class Step:
    operation: str
    variant: int
    location: int
    quantity: int
    expected_version: str | None
    """None: not sent; `current`: the level's version (0 when missing); `stale`: another."""


@dataclass(frozen=True)
class Scenario:
    variants: int
    allow_backorder: bool
    steps: list[Step]


steps = st.builds(
    Step,
    operation=st.sampled_from(OPERATIONS),
    variant=st.integers(0, 1),
    location=st.integers(0, 1),
    quantity=st.integers(1, 12),
    expected_version=st.sampled_from([None, None, None, "current", "stale"]),
)
scenarios = st.builds(
    Scenario,
    variants=st.integers(1, 2),
    allow_backorder=st.booleans(),
    steps=st.lists(steps, min_size=5, max_size=40),
)


@dataclass(frozen=True)
class Level:
    on_hand: int = 0
    reserved: int = 0
    version: int = 0
    """0: the level does not exist yet."""


def expected(
    level: Level, *, operation: str, quantity: int, backorder: bool, version: int | None
) -> tuple[str | None, Level]:
    """The model: the refusal's slug (None for success) and the level afterwards."""
    if version is not None and version != level.version:
        return "version-conflict", level
    on_hand, reserved = level.on_hand, level.reserved
    available = on_hand - reserved
    after: tuple[int, int] | None
    if operation == "add":
        after = (on_hand + quantity, reserved)
    elif operation == "subtract":
        allowed = on_hand >= quantity and (backorder or available >= quantity)
        after = (on_hand - quantity, reserved) if allowed else None
    elif operation == "reserve":
        after = (on_hand, reserved + quantity) if backorder or available >= quantity else None
    elif operation == "release":
        after = (on_hand, reserved - quantity) if reserved >= quantity else None
    else:
        after = (quantity, reserved) if backorder or quantity >= reserved else None
    if after is None:
        slug = {
            "release": "insufficient-reserved",
            "set": "below-reserved",
        }.get(operation, "insufficient-stock")
        return slug, level
    return None, Level(after[0], after[1], level.version + 1)


def replay(movements: list[Any]) -> list[tuple[int, int]]:
    """(on_hand, reserved) after each movement of one level, recomputed from the ledger."""
    on_hand = reserved = 0
    states = []
    for movement in movements:
        quantity = movement["quantity"]
        operation = movement["operation"]
        if operation == "add":
            on_hand += quantity
        elif operation == "subtract":
            on_hand -= quantity
        elif operation == "reserve":
            reserved += quantity
        elif operation == "release":
            reserved -= quantity
        else:
            on_hand = quantity
        states.append((on_hand, reserved))
    return states


async def test_random_operations_agree_with_the_model_and_the_ledger_replays(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    loop = asyncio.get_running_loop()
    tenant = world.a
    locations = [
        await new_location(client, world, tenant=tenant, code="NORTH"),
        await new_location(client, world, tenant=tenant, code="SOUTH"),
    ]
    numbers = itertools.count()
    examples = 0

    def run(coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=60)

    async def check(scenario: Scenario) -> None:
        number = next(numbers)
        variant_bodies = [{"sku": f"P{number}-V{index}"} for index in range(scenario.variants)]
        item = await create_item(
            client,
            world,
            tenant=tenant,
            sku=f"P{number}",
            allow_backorder=scenario.allow_backorder,
            **({"variants": variant_bodies} if scenario.variants > 1 else {}),
        )
        variants = [variant["id"] for variant in item["variants"]]
        model: dict[tuple[str, str], Level] = {}
        successes = 0
        for step in scenario.steps:
            key = (variants[step.variant % len(variants)], locations[step.location])
            level = model.get(key, Level())
            quantity = step.quantity - 1 if step.operation == "set" else step.quantity
            version = {
                None: None,
                "current": level.version,
                "stale": level.version + 1,
            }[step.expected_version]
            slug, after = expected(
                level,
                operation=step.operation,
                quantity=quantity,
                backorder=scenario.allow_backorder,
                version=version,
            )
            fields: dict[str, Any] = {"variant_id": key[0]}
            if version is not None:
                fields["expected_version"] = version
            response = await adjust(
                client,
                world,
                tenant=tenant,
                item_id=item["id"],
                operation=step.operation,
                quantity=quantity,
                location_id=key[1],
                **fields,
            )
            if slug is None:
                assert response.status_code == 200, (step, level, response.text)
                assert response.json()["level"] == {
                    "variant_id": key[0],
                    "location_id": key[1],
                    "on_hand": after.on_hand,
                    "reserved": after.reserved,
                    "available": after.on_hand - after.reserved,
                    "low_stock_threshold": None,
                    "version": after.version,
                }
                model[key] = after
                successes += 1
            else:
                assert response.status_code == 409, (step, level, response.text)
                body = response.json()
                assert body["type"].endswith(f"/{slug}"), (step, level, body)
                if slug == "insufficient-stock":
                    assert body["available"] == level.on_hand - level.reserved
                elif slug == "version-conflict":
                    assert body["current_version"] == level.version
                else:
                    assert body["reserved"] == level.reserved
            stored = await owner_connection.fetch(
                "SELECT s.variant_id, s.location_id, s.on_hand, s.reserved, s.version "
                "FROM stock_level s JOIN variant v ON v.tenant_id = s.tenant_id "
                "AND v.id = s.variant_id WHERE s.tenant_id = $1 AND v.item_id = $2",
                tenant,
                item["id"],
            )
            assert {
                (str(row["variant_id"]), str(row["location_id"])): Level(
                    row["on_hand"], row["reserved"], row["version"]
                )
                for row in stored
            } == model

        movements = await owner_connection.fetch(
            "SELECT m.variant_id, m.location_id, m.level_version, m.operation, m.quantity, "
            "m.on_hand_after, m.reserved_after FROM stock_movement m "
            "JOIN variant v ON v.tenant_id = m.tenant_id AND v.id = m.variant_id "
            "WHERE m.tenant_id = $1 AND v.item_id = $2 "
            "ORDER BY m.variant_id, m.location_id, m.level_version",
            tenant,
            item["id"],
        )
        assert len(movements) == successes
        for key, level in model.items():
            ledger = [m for m in movements if (str(m["variant_id"]), str(m["location_id"])) == key]
            assert [m["level_version"] for m in ledger] == list(range(1, level.version + 1))
            states = replay(ledger)
            assert states[-1] == (level.on_hand, level.reserved)
            assert states == [(m["on_hand_after"], m["reserved_after"]) for m in ledger]

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(scenario=scenarios)
    def property_holds(scenario: Scenario) -> None:
        nonlocal examples
        examples += 1
        run(check(scenario))

    await asyncio.to_thread(property_holds)

    assert examples >= 40
