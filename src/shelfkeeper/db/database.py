"""The asyncpg pool the service runs on, and per-transaction tenant binding.

Every pooled connection switches to the service role (`SET ROLE`), which is neither a
superuser nor BYPASSRLS and owns no table, so row-level security applies to every query.
The tenant is bound per transaction with `set_config('app.tenant_id', $1, true)`: when the
transaction ends the binding is gone, and a connection with no tenant bound sees no
tenant-owned row at all.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeAlias, cast

import asyncpg

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
Record: TypeAlias = asyncpg.Record

Listener: TypeAlias = Callable[[str], None]

TENANT_SETTING = "app.tenant_id"
PLATFORM_SCOPE = "_platform"
"""Tenant binding used for platform-level requests; no tenant id can take this value."""


async def bind_tenant(connection: Connection, tenant_id: str) -> None:
    """Bind the current transaction to `tenant_id` (transaction-local)."""
    await connection.execute("SELECT set_config('app.tenant_id', $1, true)", tenant_id)


async def init_connection(connection: Connection, *, role: str | None) -> None:
    """Prepare a fresh connection: JSON codecs, and the unprivileged service role."""
    await connection.set_type_codec(
        "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    await connection.set_type_codec(
        "json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
    )
    if role is not None:
        await connection.execute(f"SET ROLE {quote_identifier(role)}")


async def keep_session(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """The pool's reset on release: nothing to send. asyncpg's default sends `RESET ALL`,
    `UNLISTEN *`, `CLOSE ALL` and an advisory unlock, one round trip per request (about 8% of
    a stock change's CPU in the profile, docs/benchmarks.md). Nothing here changes session
    state: the tenant binding and every advisory lock are transaction-scoped, listeners use
    connections of their own, and the role set by `init` must stay. asyncpg still rolls back
    a transaction left open before it calls this."""


def quote_identifier(name: str) -> str:
    """Quote a SQL identifier (the role name comes from configuration)."""
    return '"' + name.replace('"', '""') + '"'


class Database:
    """The service's connection pool."""

    def __init__(self, pool: asyncpg.Pool[asyncpg.Record], dsn: str | None = None) -> None:
        self.pool = pool
        self.dsn = dsn

    @classmethod
    async def connect(
        cls, dsn: str, *, role: str | None, min_size: int = 2, max_size: int = 20
    ) -> Database:
        """Open a pool whose connections all run as `role` (None keeps the login role)."""

        async def init(connection: Connection) -> None:
            await init_connection(connection, role=role)

        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            init=init,
            reset=keep_session,
            command_timeout=60,
        )
        return cls(pool, dsn)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def transaction(self, *, readonly: bool = False) -> AsyncIterator[Connection]:
        """One connection in one transaction: committed on success, rolled back on error."""
        async with self.pool.acquire() as connection, connection.transaction(readonly=readonly):
            yield cast(Connection, connection)

    @asynccontextmanager
    async def tenant_transaction(self, tenant_id: str) -> AsyncIterator[Connection]:
        """A transaction bound to one tenant, for jobs and the command line."""
        async with self.transaction() as connection:
            await bind_tenant(connection, tenant_id)
            yield connection

    async def listener(self, channel: str, callback: Listener) -> Connection:
        """A dedicated connection (outside the pool, which it never holds) that LISTENs on
        `channel`, calling `callback(payload)` per notification. The caller closes it."""
        if self.dsn is None:
            raise RuntimeError("this database was built without a DSN; it cannot listen")
        connection: Connection = await asyncpg.connect(self.dsn)

        def deliver(_: object, __: int, ___: str, payload: object) -> None:
            callback(str(payload))

        await connection.add_listener(channel, deliver)
        return connection

    def usage(self) -> dict[str, Any]:
        return {"size": self.pool.get_size(), "idle": self.pool.get_idle_size()}
