"""Which PostgreSQL the tests run on, and a fresh migrated database per test session.

The server at 127.0.0.1:5432 when it answers (always under `CI=true`, where its absence is
an error), otherwise an embedded PostgreSQL from `pgserver`. `SHELFKEEPER_TEST_DATABASE_URL`
names another server's maintenance database explicitly.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from shelfkeeper.db import embedded, migrate

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def local_server_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def server_url(scratch: Path) -> str:
    """The maintenance-database URL of the server to test on."""
    explicit = os.environ.get("SHELFKEEPER_TEST_DATABASE_URL")
    if explicit:
        return explicit
    if os.environ.get("CI") == "true" or local_server_answers():
        return LOCAL_SERVER
    return embedded.start_embedded(scratch).get_uri()


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database (works for TCP and unix-socket URLs)."""
    base, _, query = url.partition("?")
    scheme_and_authority, _, _old = base.rpartition("/")
    return f"{scheme_and_authority}/{database}" + (f"?{query}" if query else "")


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def migrated_database(scratch: Path) -> Iterator[str]:
    """A new database, migrated to head, dropped afterwards. Yields its owner's URL."""
    url = server_url(scratch)
    name = f"shelfkeeper_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(url, f'CREATE DATABASE "{name}"'))
    dsn = with_database(url, name)
    try:
        migrate.upgrade(dsn)
        yield dsn
    finally:
        asyncio.run(_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
