"""An app with test-only routes that fail on purpose, to see how failures leave the service."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request

from shelfkeeper.app import create_app
from shelfkeeper.config import Settings
from shelfkeeper.db.database import PLATFORM_SCOPE, Database, bind_tenant
from shelfkeeper.kit.routing import TransactionalRoute, connection_of
from tests.conftest import TokenFactory

SECRET = "secret internals"


@pytest.fixture(scope="session")
def failing_app(settings: Settings, database: Database) -> FastAPI:
    app = create_app(settings, database=database)
    router = APIRouter(prefix="/test-only", route_class=TransactionalRoute)

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError(SECRET)

    @router.post("/write-then-crash/{tenant_id}")
    async def write_then_crash(tenant_id: str, request: Request) -> None:
        connection = connection_of(request)
        await bind_tenant(connection, PLATFORM_SCOPE)
        await connection.execute(
            "INSERT INTO tenant (id, name) VALUES ($1, 'half-made')", tenant_id
        )
        raise RuntimeError(SECRET)

    @router.get("/unstorable")
    async def unstorable(request: Request) -> None:
        await connection_of(request).fetchval("SELECT $1::text", "nul\x00byte")

    app.include_router(router)
    return app


@pytest.fixture
async def failing_client(
    failing_app: FastAPI, token: TokenFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """A client that would raise if an exception escaped the app.

    It sends a platform token: every transactional route authenticates first.
    """
    transport = httpx.ASGITransport(app=failing_app, raise_app_exceptions=True)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://shelfkeeper.test",
        headers={"Authorization": f"Bearer {token(None, 'platform_admin')}"},
    ) as c:
        yield c
