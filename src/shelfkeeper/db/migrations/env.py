"""Alembic environment: runs migrations over asyncpg against the configured database."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shelfkeeper.db.schema import metadata

config = context.config
target_metadata = metadata


MIGRATION_LOCK = 7_246_385_113
"""Advisory lock key held while migrating, so processes starting together take turns."""


OPTIONAL_INDEXES = frozenset({"ix_item_name_trgm"})
"""Indexes a migration creates only where the server has the extension they need."""


def include_object(
    object: object,
    name: str | None,
    type_: str,
    reflected: bool,
    compare_to: object,
) -> bool:
    return not (type_ == "index" and name in OPTIONAL_INDEXES)


def run_with_connection(connection: Connection) -> None:
    connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
    connection.commit()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        include_object=include_object,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_async() -> None:
    dsn: str = config.attributes["dsn"]

    async def creator() -> asyncpg.Connection:
        return await asyncpg.connect(dsn)

    engine = create_async_engine("postgresql+asyncpg://", async_creator=creator)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with_connection)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
asyncio.run(run_async())
