"""`shelfkeeper verify`: every level recomputed from its ledger; drift is reported."""

from __future__ import annotations

import asyncio
import os
import random
import sys
from dataclasses import dataclass

import httpx

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.inventory.ledger import find_drift
from tests.conftest import TenantWorld
from tests.inventory.factories import adjust, create_item, new_location, stock


@dataclass(frozen=True)
class Result:
    exit_code: int
    output: str


async def run_verify(database_url: str, *arguments: str) -> Result:
    """Run `shelfkeeper verify` as its own process, as an operator would."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shelfkeeper.cli",
        "verify",
        *arguments,
        env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return Result(exit_code=process.returncode, output=output.decode())


async def stocked_item(
    client: httpx.AsyncClient, world: TenantWorld, tenant: str
) -> tuple[str, str]:
    location = await new_location(client, world, tenant=tenant)
    item = await create_item(client, world, tenant=tenant)
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="add",
        quantity=10,
        location_id=location,
    )
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="reserve",
        quantity=3,
        location_id=location,
    )
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="set",
        quantity=8,
        location_id=location,
    )
    return item["id"], location


async def test_a_sound_ledger_verifies(
    client: httpx.AsyncClient, world: TenantWorld, database_url: str
) -> None:
    await stocked_item(client, world, world.a)

    result = await run_verify(database_url, "--tenant", world.a)

    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "1 tenant(s) checked, 0 problem(s) found"


async def test_a_level_changed_behind_the_ledger_is_drift(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database_url: str,
    owner_connection: Connection,
) -> None:
    _item_id, location = await stocked_item(client, world, world.a)
    await stocked_item(client, world, world.b)
    await owner_connection.execute(
        "UPDATE stock_level SET on_hand = on_hand + 1 WHERE tenant_id = $1", world.a
    )

    result = await run_verify(database_url, "--tenant", world.a)
    other = await run_verify(database_url, "--tenant", world.b)

    assert result.exit_code == 1, result.output
    drift = [line for line in result.output.splitlines() if line.startswith("DRIFT")]
    assert len(drift) == 1
    assert f"tenant={world.a}" in drift[0]
    assert f"location={location}" in drift[0]
    assert "level holds on_hand=9 reserved=3 version=3" in drift[0]
    assert "ledger gives on_hand=8 reserved=3 version=3" in drift[0]
    assert other.exit_code == 0, other.output


async def test_an_altered_movement_is_drift(
    client: httpx.AsyncClient,
    world: TenantWorld,
    database_url: str,
    owner_connection: Connection,
) -> None:
    await stocked_item(client, world, world.a)
    await owner_connection.execute(
        "UPDATE stock_movement SET quantity = 11 WHERE tenant_id = $1 AND level_version = 1",
        world.a,
    )

    result = await run_verify(database_url, "--tenant", world.a)

    assert result.exit_code == 1, result.output
    assert "movement 1 (add 11) does not follow from the one before" in result.output


async def test_a_missing_movement_is_drift(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, database: Database
) -> None:
    await stocked_item(client, world, world.a)
    await owner_connection.execute(
        "DELETE FROM stock_movement WHERE tenant_id = $1 AND level_version = 2", world.a
    )

    async with database.tenant_transaction(world.a) as db:
        drift = await find_drift(db, tenant_id=world.a)

    assert [(found.tenant_id, found.level_version) for found in drift] == [(world.a, 3)]
    assert drift[0].problem == "movement 3 (set 8) does not follow from the one before"


async def test_unknown_tenant_is_a_usage_error(database_url: str) -> None:
    result = await run_verify(database_url, "--tenant", "no-such-tenant")

    assert result.exit_code == 2
    assert "no tenant `no-such-tenant`" in result.output


async def test_ledger_is_sound_after_concurrent_mixed_operations(
    client: httpx.AsyncClient, world: TenantWorld, database_url: str
) -> None:
    tenant = world.a
    locations = [await new_location(client, world, tenant=tenant, code=f"L{n}") for n in range(2)]
    item = await create_item(client, world, tenant=tenant)
    for location in locations:
        await stock(
            client,
            world,
            tenant=tenant,
            item_id=item["id"],
            operation="add",
            quantity=30,
            location_id=location,
        )
    chooser = random.Random(7)
    operations = [
        (
            chooser.choice(["add", "subtract", "reserve", "release", "set"]),
            chooser.randint(1, 6),
            chooser.choice(locations),
        )
        for _ in range(150)
    ]

    responses = await asyncio.gather(
        *(
            adjust(
                client,
                world,
                tenant=tenant,
                item_id=item["id"],
                operation=operation,
                quantity=quantity,
                location_id=location,
            )
            for operation, quantity, location in operations
        )
    )
    result = await run_verify(database_url, "--tenant", tenant)

    assert {response.status_code for response in responses} <= {200, 409}
    assert sum(response.status_code == 200 for response in responses) >= 1
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "1 tenant(s) checked, 0 problem(s) found"
