"""`GET /api/v1/{tenantId}/audit-log`: admins only, the tenant's own entries, newest first,
filtered and paginated by cursor."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.audit.factories import audit_log, audit_url, entries, entry_count
from tests.conftest import TenantWorld, bearer
from tests.location.factories import create_location, location_url

PROBLEMS = "https://shelfkeeper.dev/problems/"


async def three_locations(client: httpx.AsyncClient, world: TenantWorld) -> list[str]:
    created = [
        await create_location(client, world, tenant=world.a, code=f"LOG-{n}") for n in range(3)
    ]
    return [location["id"] for location in created]


async def test_entries_come_newest_first_in_pages(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    ids = await three_locations(client, world)

    first = await audit_log(client, world, tenant=world.a, limit=2)
    second = await audit_log(client, world, tenant=world.a, limit=2, cursor=first["next_cursor"])

    assert [entry["entity_id"] for entry in first["data"]] == [ids[2], ids[1]]
    assert [entry["entity_id"] for entry in second["data"]] == [ids[0]]
    assert second["next_cursor"] is None
    entry = first["data"][0]
    assert set(entry) == {
        "id",
        "occurred_at",
        "actor",
        "role",
        "action",
        "entity_type",
        "entity_id",
        "before",
        "after",
        "request_id",
        "client_address",
    }
    assert (entry["actor"], entry["role"], entry["action"]) == ("user:tester", "admin", "create")


async def test_filters_by_entity_actor_and_time(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    ids = await three_locations(client, world)
    renamed = await client.patch(
        location_url(world.a, ids[0]),
        json={"name": "Renamed"},
        headers=bearer(world.token(world.a, "admin", subject="eve")),
    )
    assert renamed.status_code == 200, renamed.text
    trail = await entries(owner_connection, tenant=world.a)

    by_entity = await audit_log(
        client, world, tenant=world.a, entity_type="location", entity_id=ids[0]
    )
    by_actor = await audit_log(client, world, tenant=world.a, actor="user:eve")
    after_second = await audit_log(
        client, world, tenant=world.a, after=trail[1]["occurred_at"].isoformat()
    )
    nothing = await audit_log(client, world, tenant=world.a, entity_type="order")
    naive = await audit_log(
        client,
        world,
        tenant=world.a,
        after=(trail[-1]["occurred_at"] - timedelta(microseconds=1))
        .replace(tzinfo=None)
        .isoformat(),
    )

    assert [entry["action"] for entry in by_entity["data"]] == ["update", "create"]
    assert [entry["entity_id"] for entry in by_actor["data"]] == [ids[0]]
    assert by_actor["data"][0]["after"] == {"name": "Renamed"}
    # strictly after: the second entry itself is left out
    assert [entry["id"] for entry in after_second["data"]] == [
        str(trail[3]["id"]),
        str(trail[2]["id"]),
    ]
    assert nothing["data"] == []
    # a time without a zone is UTC
    assert [entry["id"] for entry in naive["data"]] == [str(trail[-1]["id"])]


async def test_bad_parameters_are_422(client: httpx.AsyncClient, world: TenantWorld) -> None:
    for params in (
        {"cursor": "not-a-cursor"},
        {"after": "yesterday"},
        {"after": "0.5"},
        {"after": "1733300000"},
        {"limit": "0"},
    ):
        response = await client.get(
            audit_url(world.a), params=params, headers=world.headers(world.a)
        )
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("role", ["viewer", "clerk"])
async def test_only_admins_read_the_trail(
    client: httpx.AsyncClient, world: TenantWorld, role: str
) -> None:
    await three_locations(client, world)

    response = await client.get(audit_url(world.a), headers=world.headers(world.a, role))

    assert response.status_code == 403
    assert response.json()["type"] == PROBLEMS + "forbidden"


async def test_anonymous_and_other_tenants_read_nothing(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    await three_locations(client, world)
    before = await entry_count(owner_connection, tenant=world.a)

    anonymous = await client.get(audit_url(world.a))
    foreign = await client.get(audit_url(world.a), headers=world.headers(world.b))
    own = await audit_log(client, world, tenant=world.b)

    assert anonymous.status_code == 401
    assert foreign.status_code == 403
    assert foreign.json()["type"] == PROBLEMS + "tenant-mismatch"
    assert own["data"] == []
    # reading is not a change: the trail did not grow
    assert await entry_count(owner_connection, tenant=world.a) == before
