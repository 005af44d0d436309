"""The migrations build exactly the declared schema (`alembic check`)."""

import asyncio

from shelfkeeper.db import migrate


async def test_declared_tables_match_the_migrations(database_url: str) -> None:
    # alembic runs its own event loop, so it gets a thread of its own
    await asyncio.to_thread(migrate.check, database_url)


async def test_migrating_again_changes_nothing(database_url: str) -> None:
    await asyncio.to_thread(migrate.upgrade, database_url)
    await asyncio.to_thread(migrate.check, database_url)
