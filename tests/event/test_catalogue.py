"""The event catalogue (docs/events.md) shows what the code emits.

Real operations through the API produce every event type; each type's example payload in the
catalogue must have exactly the keys (nested objects and list items included) of the event
the code recorded, and the envelope example exactly the envelope's keys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from shelfkeeper.db.database import Database
from shelfkeeper.event.schemas import EventType
from tests.conftest import TenantWorld
from tests.event.test_relay import relay_until_done
from tests.inventory.factories import create_item
from tests.inventory.reservation_factories import place, stock
from tests.order.after_sale import refunds_url, return_url, returns_url
from tests.order.factories import moved, patch_order, payments_url, placed

CATALOGUE = Path(__file__).parents[2] / "docs" / "events.md"
OUTSIDE_THE_SCENARIO = {"WebhookEndpointDisabled"}
"""Recorded by webhook delivery (tests/event/test_webhook*), not by these operations."""


async def every_kind_of_event(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, *, tenant: str
) -> list[dict[str, Any]]:
    """Run an order's whole life, two returns and a cancellation; returns the tenant's
    events (envelopes as `GET /events` shows them), in sequence order."""
    admin = world.headers(tenant)
    north = await place(client, world, tenant=tenant, code="N")
    item = await create_item(
        client, world, tenant=tenant, sku="TOWEL", name="Bath towel", price="10.00"
    )
    await stock(
        client,
        world,
        tenant=tenant,
        item_id=item["id"],
        operation="add",
        quantity=10,
        location_id=north,
        reason="received",
        reference="po:2026-0042",
    )
    threshold = await client.put(
        f"/api/v1/{tenant}/inventory/{item['id']}",
        json={"low_stock_threshold": 3},
        headers=admin | {"If-Match": f'"{item["version"]}"'},
    )
    assert threshold.status_code == 200, threshold.text

    order = await placed(
        client,
        world,
        tenant=tenant,
        lines=[{"sku": "TOWEL", "quantity": 2}],
        shipping_address={"name": "Ada Lovelace", "city": "Rotterdam", "country": "NL"},
    )
    paid = await client.post(
        payments_url(tenant, order["id"]),
        json={"amount": "20.00", "provider": "manual", "reference": "pay-1"},
        headers=admin,
    )
    assert paid.status_code == 201, paid.text
    await moved(client, world, tenant=tenant, order_id=order["id"], status="processed")
    shipped = await patch_order(
        client,
        world,
        tenant=tenant,
        order_id=order["id"],
        body={"status": "shipped", "shipment": {"carrier": "PostNL", "tracking_number": "3S1"}},
    )
    assert shipped.status_code == 200, shipped.text
    await moved(client, world, tenant=tenant, order_id=order["id"], status="delivered")
    line_id = order["lines"][0]["id"]
    returned = await client.post(
        returns_url(tenant, order["id"]),
        json={
            "lines": [{"line_id": line_id, "quantity": 1, "reason": "too small", "restock": True}]
        },
        headers=admin,
    )
    assert returned.status_code == 201, returned.text
    received = await client.patch(
        return_url(tenant, order["id"], returned.json()["id"]),
        json={"status": "received"},
        headers=admin,
    )
    assert received.status_code == 200, received.text
    refunded = await client.post(
        refunds_url(tenant, order["id"]),
        json={"amount": "10.00", "return_id": returned.json()["id"], "reason": "returned"},
        headers=admin,
    )
    assert refunded.status_code == 201, refunded.text
    second = await client.post(
        returns_url(tenant, order["id"]),
        json={"lines": [{"line_id": line_id, "quantity": 1, "restock": False}]},
        headers=admin,
    )
    assert second.status_code == 201, second.text
    rejected = await client.patch(
        return_url(tenant, order["id"], second.json()["id"]),
        json={"status": "rejected"},
        headers=admin,
    )
    assert rejected.status_code == 200, rejected.text

    # 9 on hand: 6 more reserved leaves 3 available, at the threshold
    big = await placed(client, world, tenant=tenant, lines=[{"sku": "TOWEL", "quantity": 6}])
    await moved(client, world, tenant=tenant, order_id=big["id"], status="canceled")

    await relay_until_done(database, tenant=tenant)
    response = await client.get(
        f"/api/v1/{tenant}/events", params={"limit": 200}, headers=world.headers(tenant, "viewer")
    )
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["data"]
    return events


def shape(value: Any) -> Any:
    """The keys of a JSON value, recursively (a list by its first item)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def catalogue_examples() -> dict[str, Any]:
    """Each `### \\`Type\\`` section's first JSON example, and the envelope's (`envelope`)."""
    text = CATALOGUE.read_text()
    examples: dict[str, Any] = {}
    sections = re.split(r"^### ", text, flags=re.MULTILINE)
    for section in sections[1:]:
        heading = section.splitlines()[0]
        found = re.fullmatch(r"`(\w+)`.*", heading)
        block = re.search(r"```json\n(.*?)\n```", section, flags=re.DOTALL)
        if found and block:
            examples[found.group(1)] = json.loads(block.group(1))
    envelope = re.search(r"<!-- envelope -->\n```json\n(.*?)\n```", text, flags=re.DOTALL)
    assert envelope is not None, "the catalogue shows an envelope after <!-- envelope -->"
    examples["envelope"] = json.loads(envelope.group(1))
    return examples


async def test_every_event_type_is_emitted_by_real_operations(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    events = await every_kind_of_event(client, world, database, tenant=world.a)

    assert {event["type"] for event in events} == {
        kind.value for kind in EventType
    } - OUTSIDE_THE_SCENARIO
    assert [event["sequence"] for event in events] == list(range(1, len(events) + 1))


async def test_the_catalogue_examples_have_the_keys_the_code_emits(
    client: httpx.AsyncClient, world: TenantWorld, database: Database
) -> None:
    events = await every_kind_of_event(client, world, database, tenant=world.a)
    emitted: dict[str, Any] = {}
    for event in events:
        emitted.setdefault(event["type"], event)
    examples = catalogue_examples()
    assert set(examples) == {kind.value for kind in EventType} | {"envelope"}
    for kind, event in emitted.items():
        assert shape(examples[kind]) == shape(event["data"]), kind
    assert shape({**examples["envelope"], "data": {}}) == shape({**events[0], "data": {}})
