"""`/webhooks`: validation, roles, tenants, pagination, and the SSRF guard at creation and
update (private networks not allowed: the shared app's default)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from shelfkeeper.db.database import Connection
from shelfkeeper.privacy import service as privacy_service
from tests.conftest import TenantWorld
from tests.event.webhook_receiver import (
    PUBLIC_URL,
    create_webhook,
    deliveries_url,
    webhook_url,
    webhooks_url,
)

PROBLEMS = "https://shelfkeeper.dev/problems/"


async def webhook_count(owner: Connection, *, tenant: str) -> int:
    count: int = await owner.fetchval(
        "SELECT count(*) FROM webhook_endpoint WHERE tenant_id = $1", tenant
    )
    return count


def url_error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEMS + "validation-error"
    [error] = body["errors"]
    assert error["loc"] == ["body", "url"]
    found: dict[str, Any] = error
    return found


async def test_creating_a_webhook_returns_its_secret_once(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.post(
        webhooks_url(world.a),
        json={
            "url": PUBLIC_URL,
            "events": ["OrderPlaced", "OrderShipped", "OrderPlaced"],
            "description": "ERP",
        },
        headers=world.headers(world.a),
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # a secret the reference library accepts
    assert created["events"] == ["OrderPlaced", "OrderShipped"]
    assert created["enabled"] is True
    assert created["consecutive_failures"] == 0
    assert response.headers["location"] == webhook_url(world.a, created["id"])
    assert response.headers["etag"] == '"1"'

    read = await client.get(webhook_url(world.a, created["id"]), headers=world.headers(world.a))
    assert read.status_code == 200
    assert "secret" not in read.json()
    assert {key: value for key, value in created.items() if key != "secret"} == read.json()
    listed = await client.get(webhooks_url(world.a), headers=world.headers(world.a))
    assert all("secret" not in webhook for webhook in listed.json()["data"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fc00::1]/hook",
        "http://0.0.0.0/hook",
        "http://localhost:8080/hook",
        "http://LOCALHOST./hook",
    ],
)
async def test_a_private_target_is_refused_at_creation(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, url: str
) -> None:
    response = await client.post(
        webhooks_url(world.a),
        json={"url": url, "events": ["OrderPlaced"]},
        headers=world.headers(world.a),
    )
    assert url_error(response)["type"] == "url_forbidden"
    assert await webhook_count(owner_connection, tenant=world.a) == 0


async def test_a_private_target_is_refused_on_update(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    webhook = await create_webhook(client, world, tenant=world.a, url=PUBLIC_URL)
    for url in ("http://169.254.169.254/", "http://localhost/"):
        response = await client.patch(
            webhook_url(world.a, webhook["id"]), json={"url": url}, headers=world.headers(world.a)
        )
        assert url_error(response)["type"] == "url_forbidden"
    read = await client.get(webhook_url(world.a, webhook["id"]), headers=world.headers(world.a))
    assert read.json()["url"] == PUBLIC_URL
    assert read.json()["version"] == 1


async def test_a_name_that_does_not_resolve_yet_is_accepted(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.post(
        webhooks_url(world.a),
        json={"url": "https://hooks.invalid/in", "events": ["OrderPlaced"]},
        headers=world.headers(world.a),
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"url": "ftp://example.com/", "events": ["OrderPlaced"]}, ["body", "url"]),
        ({"url": "https://u:p@example.com/", "events": ["OrderPlaced"]}, ["body", "url"]),
        ({"url": "https:///nohost", "events": ["OrderPlaced"]}, ["body", "url"]),
        ({"url": "example.com/hook", "events": ["OrderPlaced"]}, ["body", "url"]),
        ({"url": "", "events": ["OrderPlaced"]}, ["body", "url"]),
        ({"url": "https://exa\u200bmple.com/", "events": ["OrderPlaced"]}, ["body", "url"]),
        ({"url": PUBLIC_URL, "events": ["OrderExploded"]}, ["body", "events", 0]),
        ({"url": PUBLIC_URL, "events": []}, ["body", "events"]),
        ({"url": PUBLIC_URL}, ["body", "events"]),
        ({"url": PUBLIC_URL, "events": ["OrderPlaced"], "secret": "x"}, ["body", "secret"]),
        ({"url": PUBLIC_URL, "events": ["OrderPlaced"], "enabled": "yes"}, ["body", "enabled"]),
    ],
)
async def test_invalid_bodies_are_422(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    body: dict[str, Any],
    location: list[Any],
) -> None:
    response = await client.post(webhooks_url(world.a), json=body, headers=world.headers(world.a))
    assert response.status_code == 422, response.text
    assert location in [error["loc"] for error in response.json()["errors"]]
    assert await webhook_count(owner_connection, tenant=world.a) == 0


@pytest.mark.parametrize("role", ["clerk", "viewer"])
async def test_only_admins_manage_webhooks(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection, role: str
) -> None:
    webhook = await create_webhook(client, world, tenant=world.a, url=PUBLIC_URL)
    headers = world.headers(world.a, role)
    url = webhook_url(world.a, webhook["id"])
    attempts = [
        await client.post(
            webhooks_url(world.a),
            json={"url": PUBLIC_URL, "events": ["OrderPlaced"]},
            headers=headers,
        ),
        await client.get(webhooks_url(world.a), headers=headers),
        await client.get(url, headers=headers),
        await client.patch(url, json={"enabled": False}, headers=headers),
        await client.delete(url, headers=headers),
        await client.get(deliveries_url(world.a, webhook["id"]), headers=headers),
        await client.post(
            f"{deliveries_url(world.a, webhook['id'])}/{uuid.uuid4()}/redeliver", headers=headers
        ),
    ]
    for response in attempts:
        assert response.status_code == 403, response.text
        assert response.json()["type"] == PROBLEMS + "forbidden"
    assert await webhook_count(owner_connection, tenant=world.a) == 1
    read = await client.get(url, headers=world.headers(world.a))
    assert (read.json()["enabled"], read.json()["version"]) == (True, 1)


async def test_anonymous_requests_are_401(client: httpx.AsyncClient, world: TenantWorld) -> None:
    response = await client.post(
        webhooks_url(world.a), json={"url": PUBLIC_URL, "events": ["OrderPlaced"]}
    )
    assert response.status_code == 401


async def test_another_tenant_s_webhook_is_not_found(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    webhook = await create_webhook(client, world, tenant=world.a, url=PUBLIC_URL)
    headers = world.headers(world.b)
    url = webhook_url(world.b, webhook["id"])
    attempts = [
        await client.get(url, headers=headers),
        await client.patch(url, json={"enabled": False}, headers=headers),
        await client.delete(url, headers=headers),
        await client.get(deliveries_url(world.b, webhook["id"]), headers=headers),
        await client.post(
            f"{deliveries_url(world.b, webhook['id'])}/{uuid.uuid4()}/redeliver", headers=headers
        ),
    ]
    for response in attempts:
        assert response.status_code == 404, response.text
    listed = await client.get(webhooks_url(world.b), headers=headers)
    assert listed.json()["data"] == []
    # B's token on A's path is refused before anything is read.
    crossed = await client.get(webhook_url(world.a, webhook["id"]), headers=headers)
    assert crossed.status_code == 403
    assert crossed.json()["type"] == PROBLEMS + "tenant-mismatch"
    read = await client.get(webhook_url(world.a, webhook["id"]), headers=world.headers(world.a))
    assert (read.json()["enabled"], read.json()["version"]) == (True, 1)
    assert await webhook_count(owner_connection, tenant=world.a) == 1


async def test_update_delete_and_conditional_requests(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    webhook = await create_webhook(client, world, tenant=world.a, url=PUBLIC_URL)
    url = webhook_url(world.a, webhook["id"])
    headers = world.headers(world.a)
    stale = await client.patch(
        url, json={"events": ["RefundIssued"]}, headers=headers | {"If-Match": '"7"'}
    )
    assert stale.status_code == 412
    changed = await client.patch(
        url,
        json={"events": ["RefundIssued"], "enabled": False, "description": "paused"},
        headers=headers | {"If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["events"], changed.json()["enabled"]) == (["RefundIssued"], False)
    assert changed.json()["version"] == 2
    cleared = await client.patch(url, json={"description": None}, headers=headers)
    assert cleared.json()["description"] is None
    refused = await client.patch(url, json={"events": None}, headers=headers)
    assert refused.status_code == 422
    deleted = await client.delete(url, headers=headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=headers)).status_code == 404
    assert await webhook_count(owner_connection, tenant=world.a) == 0


async def test_webhooks_are_listed_page_by_page(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    created = [
        (await create_webhook(client, world, tenant=world.a, url=f"{PUBLIC_URL}/{index}"))["id"]
        for index in range(3)
    ]
    headers = world.headers(world.a)
    first = await client.get(webhooks_url(world.a), params={"limit": 2}, headers=headers)
    assert first.status_code == 200
    assert first.json()["next_cursor"] is not None
    second = await client.get(
        webhooks_url(world.a),
        params={"limit": 2, "cursor": first.json()["next_cursor"]},
        headers=headers,
    )
    assert second.json()["next_cursor"] is None
    listed = [webhook["id"] for webhook in first.json()["data"] + second.json()["data"]]
    assert listed == created
    bad = await client.get(webhooks_url(world.a), params={"sort": "url"}, headers=headers)
    assert bad.status_code == 422
    empty = await client.get(deliveries_url(world.a, created[0]), headers=headers)
    assert empty.json() == {"data": [], "next_cursor": None}
    missing = await client.post(
        f"{deliveries_url(world.a, created[0])}/{uuid.uuid4()}/redeliver", headers=headers
    )
    assert missing.status_code == 404


async def test_the_signing_secret_is_sealed_at_rest(
    client: httpx.AsyncClient, world: TenantWorld, owner_connection: Connection
) -> None:
    created = await create_webhook(client, world, tenant=world.a, url=PUBLIC_URL)
    secret = created["secret"]

    stored = await owner_connection.fetchval(
        "SELECT secret FROM webhook_endpoint WHERE tenant_id = $1 AND id = $2",
        world.a,
        uuid.UUID(created["id"]),
    )

    assert secret.encode() not in stored
    assert secret.removeprefix("whsec_").encode() not in stored
    assert privacy_service.is_sealed(stored)
