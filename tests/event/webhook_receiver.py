"""Helpers for the webhook tests: a tiny HTTP receiver on 127.0.0.1 (asyncio streams,
HTTP/1.1, one request per connection), and factories.

`respond(request, index)` decides each answer: a status code, after whatever wait it
likes (a test makes it hang to stand for a receiver that never answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from shelfkeeper.db.database import Database
from shelfkeeper.event import relay, webhook_service
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from tests.conftest import TenantWorld


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def verified(self, secret: str) -> dict[str, Any]:
        """The body, after checking its Standard Webhooks signature (raises if wrong)."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload

    @property
    def event(self) -> dict[str, Any]:
        payload: dict[str, Any] = json.loads(self.body)
        return payload


Responder = Callable[[Received, int], Awaitable[int]]


async def always_ok(_: Received, __: int) -> int:
    return 204


def failing_first(count: int, status: int = 503) -> Responder:
    """Answer `status` to the first `count` requests, 200 after."""

    async def respond(_: Received, index: int) -> int:
        return status if index < count else 200

    return respond


class Receiver:
    """Records every request; use as `async with Receiver(...) as receiver`."""

    def __init__(self, respond: Responder = always_ok) -> None:
        self.respond = respond
        self.requests: list[Received] = []
        self.connections = 0
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            request = Received(method, path, headers, body)
            async with self._arrived:
                index = len(self.requests)
                self.requests.append(request)
                self._arrived.notify_all()
            status = await self.respond(request, index)
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            self._handlers.discard(task)

    async def wait_for(self, count: int, *, seconds: float = 20) -> list[Received]:
        """Wait until at least `count` requests arrived; returns them all."""
        async with asyncio.timeout(seconds), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)


# Factories for the webhook tests (and `tests/db/test_tenancy.py`'s seeding).

PUBLIC_URL = "https://93.184.215.14/hook"
"""A public address, for webhooks that must pass the guard but are never sent (no DNS)."""


def webhooks_url(tenant: str) -> str:
    return f"/api/v1/{tenant}/webhooks"


def webhook_url(tenant: str, webhook_id: str) -> str:
    return f"/api/v1/{tenant}/webhooks/{webhook_id}"


def deliveries_url(tenant: str, webhook_id: str) -> str:
    return f"/api/v1/{tenant}/webhooks/{webhook_id}/deliveries"


async def create_webhook(
    client: httpx.AsyncClient,
    world: TenantWorld,
    *,
    tenant: str,
    url: str,
    events: list[str] | None = None,
) -> dict[str, Any]:
    """A webhook (as the tenant's admin) for `events` (default: every type)."""
    response = await client.post(
        webhooks_url(tenant),
        json={"url": url, "events": events or [event.value for event in EventType]},
        headers=world.headers(tenant, "admin"),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def seed_webhook_tables(
    client: httpx.AsyncClient, world: TenantWorld, database: Database, *, tenant: str
) -> None:
    """Give `tenant` a row in each webhook table through the real code paths: a webhook,
    a delivery made by the relay, one attempt recorded by the dispatcher's service (no
    request is sent)."""
    webhook = await create_webhook(
        client, world, tenant=tenant, url=PUBLIC_URL, events=["OrderPlaced"]
    )
    async with database.tenant_transaction(tenant) as db:
        await event_service.record(
            db, tenant_id=tenant, type=EventType.ORDER_PLACED, subject="seed-webhook", data={}
        )
    assert await relay.relay_tenant(database, tenant_id=tenant)
    async with database.tenant_transaction(tenant) as db:
        claims = await webhook_service.claim(db, tenant_id=tenant, limit=1, lease_seconds=60)
        assert [claim.endpoint_id for claim in claims] == [uuid.UUID(webhook["id"])]
        outcome = webhook_service.Outcome(datetime.now(UTC), 0.01, status_code=204)
        status = await webhook_service.record_outcome(
            db, claims[0], outcome, schedule=[1.0], disable_after=5
        )
    assert status == "succeeded"
