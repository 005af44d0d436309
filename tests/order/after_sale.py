"""Helpers for the after-sale tests: shipped orders, returns, refunds, signed callbacks."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from tests.conftest import TenantWorld
from tests.inventory.reservation_factories import place, stocked_item
from tests.order.factories import moved, placed


def returns_url(tenant: str, order_id: str) -> str:
    return f"/api/v1/{tenant}/orders/{order_id}/returns"


def return_url(tenant: str, order_id: str, return_id: str) -> str:
    return f"/api/v1/{tenant}/orders/{order_id}/returns/{return_id}"


def refunds_url(tenant: str, order_id: str) -> str:
    return f"/api/v1/{tenant}/orders/{order_id}/refunds"


def exchanges_url(tenant: str, order_id: str) -> str:
    return f"/api/v1/{tenant}/orders/{order_id}/exchanges"


def callback_url(tenant: str, provider: str = "manual") -> str:
    return f"/api/v1/{tenant}/integrations/{provider}/callback"


def secret_url(tenant: str, provider: str = "manual") -> str:
    return f"/api/v1/{tenant}/integrations/{provider}/secret"


async def shipped_order(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    lines: list[dict[str, Any]],
    status: str = "shipped",
    **fields: Any,
) -> dict[str, Any]:
    """Place an order for `lines`, then move it to processed and shipped (or only to
    `status` along that way)."""
    order = await placed(client, world, tenant=tenant, lines=lines, **fields)
    for step in ("processed", "shipped", "delivered"):
        if order["status"] == status:
            break
        order = await moved(client, world, tenant=tenant, order_id=order["id"], status=step)
    return order


async def towel_world(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, on_hand: int = 10
) -> tuple[str, str]:
    """Location `N` with `on_hand` towels at 10.00; returns (location id, variant id)."""
    north = await place(client, world, tenant=tenant, code="N")
    _, variant = await stocked_item(
        client, world, tenant=tenant, sku="TOWEL", on_hand={north: on_hand}
    )
    return north, variant


async def request_return(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    order_id: str,
    lines: list[dict[str, Any]],
    role: str = "clerk",
) -> httpx.Response:
    return await client.post(
        returns_url(tenant, order_id), json={"lines": lines}, headers=world.headers(tenant, role)
    )


def signed_headers(
    secret: str, body: bytes, *, webhook_id: str | None = None, at: datetime | None = None
) -> dict[str, str]:
    webhook_id = webhook_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int((at or datetime.now(UTC)).timestamp())
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        # Signed the way a provider would, with the Standard Webhooks reference library.
        "webhook-signature": Webhook(secret).sign(
            webhook_id, datetime.fromtimestamp(timestamp, tz=UTC), body
        ),
        "content-type": "application/json",
    }


async def new_secret(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, provider: str = "manual"
) -> str:
    response = await client.post(secret_url(tenant, provider), headers=world.headers(tenant))
    assert response.status_code == 201, response.text
    secret: str = response.json()["secret"]
    return secret


async def send_callback(
    client: httpx.AsyncClient,
    *,
    tenant: str,
    secret: str,
    payload: dict[str, Any],
    provider: str = "manual",
    webhook_id: str | None = None,
    at: datetime | None = None,
) -> httpx.Response:
    body = json.dumps(payload).encode()
    return await client.post(
        callback_url(tenant, provider),
        content=body,
        headers=signed_headers(secret, body, webhook_id=webhook_id, at=at),
    )
