"""Every successful change in a tenant leaves exactly one audit entry per change, written in
its own transaction, with who made it and from which request; a refused or failed request
leaves none, and a replayed one no second."""

from __future__ import annotations

from uuid import UUID

import httpx

from shelfkeeper.db.database import Connection
from tests.audit.factories import entries, entry_count
from tests.conftest import TenantWorld
from tests.inventory.factories import create_item, new_location, stock
from tests.location.factories import create_location, location_url, locations_url
from tests.order.factories import moved, placed


async def test_a_creation_is_one_entry_with_its_actor_role_request_and_client(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    response = await client.post(
        locations_url(world.a),
        json={"code": "AUD-1", "name": "Audit warehouse", "kind": "warehouse", "priority": 3},
        headers=world.headers(world.a) | {"X-Request-ID": "audit-request-1"},
    )
    assert response.status_code == 201, response.text

    [entry] = await entries(owner_connection, tenant=world.a)
    assert entry["actor"] == "user:tester"
    assert entry["role"] == "admin"
    assert entry["action"] == "create"
    assert (entry["entity_type"], entry["entity_id"]) == ("location", response.json()["id"])
    assert entry["before"] is None
    assert entry["after"] == {
        "code": "AUD-1",
        "name": "Audit warehouse",
        "kind": "warehouse",
        "address": None,
        "active": True,
        "priority": 3,
    }
    assert entry["request_id"] == "audit-request-1"
    assert entry["client_address"] == "127.0.0.1"
    assert await entry_count(owner_connection, tenant=world.b) == 0


async def test_an_update_keeps_only_the_changed_fields_and_a_deletion_the_last_state(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await create_location(client, world, tenant=world.a, code="AUD-2", name="Old")
    url = location_url(world.a, location["id"])

    updated = await client.patch(
        url, json={"name": "New", "priority": 0}, headers=world.headers(world.a)
    )
    deleted = await client.delete(url, headers=world.headers(world.a))

    assert (updated.status_code, deleted.status_code) == (200, 204)
    created, update, deletion = await entries(owner_connection, tenant=world.a)
    assert created["action"] == "create"
    assert (update["action"], update["entity_id"]) == ("update", location["id"])
    # `priority` was sent but did not change: only `name` is recorded
    assert (update["before"], update["after"]) == ({"name": "Old"}, {"name": "New"})
    assert (deletion["action"], deletion["entity_id"]) == ("delete", location["id"])
    assert deletion["before"] is not None
    assert deletion["before"]["name"] == "New"
    assert deletion["after"] is None


async def test_a_stock_adjustment_records_the_counts_before_and_after(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location_id = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a, sku="AUD-MUG")
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=7,
        location_id=location_id,
    )
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="subtract",
        quantity=2,
        location_id=location_id,
    )

    trail = await entries(owner_connection, tenant=world.a)
    assert [(entry["action"], entry["entity_type"]) for entry in trail] == [
        ("create", "location"),
        ("create", "item"),
        ("adjust_stock", "item"),
        ("adjust_stock", "item"),
    ]
    assert trail[1]["role"] == "clerk"
    assert trail[1]["after"]["sku"] == "AUD-MUG"
    added, subtracted = trail[2], trail[3]
    assert added["entity_id"] == item["id"]
    assert added["before"] == {"on_hand": 0}
    assert added["after"]["on_hand"] == 7
    assert (added["after"]["operation"], added["after"]["quantity"]) == ("add", 7)
    assert added["after"]["location_id"] == location_id
    assert subtracted["before"] == {"on_hand": 7}
    assert subtracted["after"]["on_hand"] == 5


async def test_an_order_status_change_records_both_statuses(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location_id = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a, sku="AUD-TEA")
    await stock(
        client,
        world,
        tenant=world.a,
        item_id=item["id"],
        operation="add",
        quantity=3,
        location_id=location_id,
    )
    order = await placed(
        client,
        world,
        tenant=world.a,
        lines=[{"sku": "AUD-TEA", "quantity": 1, "unit_price": "2.00"}],
    )
    await moved(client, world, tenant=world.a, order_id=order["id"], status="canceled")

    trail = await entries(owner_connection, tenant=world.a)
    placement, cancellation = trail[-2], trail[-1]
    # no service describes a placement: the generic entry names the operation and the order
    assert (placement["action"], placement["entity_type"], placement["entity_id"]) == (
        "create_order",
        "order",
        order["id"],
    )
    assert (placement["before"], placement["after"]) == (None, None)
    assert (cancellation["action"], cancellation["entity_type"]) == ("change_status", "order")
    assert cancellation["entity_id"] == order["id"]
    assert (cancellation["before"], cancellation["after"]) == (
        {"status": "pending"},
        {"status": "canceled"},
    )


async def test_requests_no_service_describes_get_one_generic_entry(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    key = await client.post(
        f"/api/v1/{world.a}/api-keys",
        json={"name": "scanner", "role": "clerk"},
        headers=world.headers(world.a),
    )
    assert key.status_code == 201, key.text
    revoked = await client.delete(
        f"/api/v1/{world.a}/api-keys/{key.json()['id']}", headers=world.headers(world.a)
    )
    assert revoked.status_code == 204, revoked.text

    created, revocation = await entries(owner_connection, tenant=world.a)
    assert (created["action"], created["entity_type"], created["entity_id"]) == (
        "create_api_key",
        "api_key",
        key.json()["id"],
    )
    assert (revocation["entity_type"], revocation["entity_id"]) == ("api_key", key.json()["id"])
    assert revocation["action"] != created["action"]


async def test_refused_and_failed_requests_leave_no_entry(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location = await create_location(client, world, tenant=world.a, code="AUD-3")
    url = location_url(world.a, location["id"])
    before = await entry_count(owner_connection, tenant=world.a)

    outcomes = [
        # a conflict (duplicate code), a stale If-Match, a wrong role, invalid input,
        # another tenant's credential, no credential
        await client.post(
            locations_url(world.a),
            json={"code": "AUD-3", "name": "x", "kind": "store"},
            headers=world.headers(world.a),
        ),
        await client.patch(
            url, json={"name": "y"}, headers=world.headers(world.a) | {"If-Match": '"99"'}
        ),
        await client.patch(url, json={"name": "y"}, headers=world.headers(world.a, "clerk")),
        await client.patch(url, json={"priority": "high"}, headers=world.headers(world.a)),
        await client.patch(url, json={"name": "y"}, headers=world.headers(world.b)),
        await client.delete(url),
    ]

    assert [response.status_code for response in outcomes] == [409, 412, 403, 422, 403, 401]
    assert await entry_count(owner_connection, tenant=world.a) == before
    assert await entry_count(owner_connection, tenant=world.b) == 0


async def test_a_rolled_back_stock_change_leaves_no_entry(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    location_id = await new_location(client, world, tenant=world.a)
    item = await create_item(client, world, tenant=world.a, sku="AUD-CUP")
    before = await entry_count(owner_connection, tenant=world.a)

    refused = await client.patch(
        f"/api/v1/{world.a}/inventory/{item['id']}/stock",
        json={"operation": "subtract", "quantity": 1, "location_id": location_id},
        headers=world.headers(world.a, "clerk"),
    )

    assert refused.status_code == 409, refused.text
    assert await entry_count(owner_connection, tenant=world.a) == before


async def test_an_idempotent_replay_writes_no_second_entry(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    headers = world.headers(world.a) | {"Idempotency-Key": "audit-once"}
    body = {"code": "AUD-4", "name": "Once", "kind": "store"}

    first = await client.post(locations_url(world.a), json=body, headers=headers)
    replay = await client.post(locations_url(world.a), json=body, headers=headers)

    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.headers["Idempotent-Replayed"] == "true"
    [entry] = await entries(owner_connection, tenant=world.a)
    assert entry["entity_id"] == first.json()["id"]
    assert UUID(entry["entity_id"]) == UUID(replay.json()["id"])
