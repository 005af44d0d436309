"""Apply and check Alembic migrations programmatically (used by the CLI and the tests)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from shelfkeeper.db.rls import SERVICE_ROLE

__all__ = ["SERVICE_ROLE", "alembic_config", "check", "upgrade"]


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "shelfkeeper.db:migrations")
    config.attributes["dsn"] = dsn
    return config


def upgrade(dsn: str, revision: str = "head") -> None:
    """Migrate the database at `dsn` (connecting as its owner) up to `revision`."""
    command.upgrade(alembic_config(dsn), revision)


def check(dsn: str) -> None:
    """Fail if the declared tables differ from what the migrations built (`alembic check`)."""
    command.check(alembic_config(dsn))
