"""Fixtures shared by every test: a real PostgreSQL, the app, clients, tenants, tokens.

Every test works in tenants of its own (random ids), so tests never see each other's data;
the database itself is created and migrated once per session.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from shelfkeeper.app import create_app
from shelfkeeper.auth.tokens import issue_token
from shelfkeeper.config import Settings
from shelfkeeper.db import migrate
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate
from tests.database import migrated_database

JWT_SECRET = "test-secret-0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of this session's migrated database, as its owner (not the service role)."""
    with migrated_database(tmp_path_factory.mktemp("pg")) as dsn:
        yield dsn


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("data"),
        jwt_secret=JWT_SECRET,
        database_pool_min_size=1,
        database_pool_max_size=10,
    )


@pytest.fixture(scope="session")
async def database(settings: Settings) -> AsyncIterator[Database]:
    """The service's pool: every connection runs as the RLS-bound service role."""
    assert settings.database_url is not None
    db = await Database.connect(
        settings.database_url, role=migrate.SERVICE_ROLE, min_size=1, max_size=10
    )
    yield db
    await db.close()


@pytest.fixture(scope="session")
def app(settings: Settings, database: Database) -> FastAPI:
    return create_app(settings, database=database)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shelfkeeper.test") as c:
        yield c


def new_tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


async def create_tenant(database: Database, *, tenant_id: str | None = None) -> str:
    tenant_id = tenant_id or new_tenant_id()
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        await tenant_service.create(db, body=TenantCreate(id=tenant_id, name=f"Tenant {tenant_id}"))
    return tenant_id


TokenFactory = Callable[..., str]


@pytest.fixture(scope="session")
def token(settings: Settings) -> TokenFactory:
    """`token(tenant_id, "admin")`, or `token(None, "platform_admin")` for platform tokens."""

    def make(tenant_id: str | None, *roles: str, subject: str = "tester") -> str:
        return issue_token(settings, subject=subject, tenant_id=tenant_id, roles=list(roles))

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class TenantWorld:
    """Two tenants, with a header set for each role of each."""

    a: str
    b: str
    token: TokenFactory

    def headers(self, tenant_id: str, role: str = "admin") -> dict[str, str]:
        return bearer(self.token(tenant_id, role))

    @property
    def platform(self) -> dict[str, str]:
        return bearer(self.token(None, "platform_admin"))


@pytest.fixture
async def world(database: Database, token: TokenFactory) -> TenantWorld:
    return TenantWorld(
        a=await create_tenant(database), b=await create_tenant(database), token=token
    )


@pytest.fixture
async def owner_connection(database_url: str) -> AsyncIterator[Connection]:
    """A connection as the database owner, for assertions that must see every tenant."""
    import asyncpg

    from shelfkeeper.db.database import init_connection

    connection = await asyncpg.connect(database_url)
    await init_connection(connection, role=None)
    yield connection
    await connection.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path
