"""The `shelfkeeper` command line."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import click

from shelfkeeper.auth.principal import TENANT_ROLES, Role
from shelfkeeper.auth.tokens import issue_token
from shelfkeeper.config import Settings
from shelfkeeper.db import embedded, migrate
from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.kit.problems import Problem
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate


def database_url(settings: Settings) -> str:
    """`DATABASE_URL`, or the embedded PostgreSQL's (started, or joined if already running).

    The embedded server stops when the last process using it exits.
    """
    if settings.database_url is not None:
        return settings.database_url
    server = embedded.start_embedded(settings.data_dir)
    click.echo(f"embedded PostgreSQL in {settings.data_dir.resolve() / 'postgres'}", err=True)
    return server.get_uri()


@click.group()
def main() -> None:
    """Shelfkeeper: multi-tenant inventory and order tracking."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str, port: int, workers: int) -> None:
    """Migrate the database and serve the API."""
    import uvicorn

    settings = Settings()
    dsn = database_url(settings)
    migrate.upgrade(dsn)
    os.environ["DATABASE_URL"] = dsn  # the workers join the same database
    uvicorn.run(
        "shelfkeeper.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        proxy_headers=False,
        server_header=False,
    )


@main.command(name="migrate")
@click.option("--check", is_flag=True, help="Only check that the schema matches the models.")
def migrate_command(check: bool) -> None:
    """Apply schema migrations to the configured database."""
    dsn = database_url(Settings())
    if check:
        migrate.check(dsn)
    else:
        migrate.upgrade(dsn)
    click.echo("ok")


@main.group()
def tenants() -> None:
    """Manage tenants."""


@tenants.command(name="create")
@click.argument("tenant_id")
@click.option("--name", required=True)
def create_tenant(tenant_id: str, name: str) -> None:
    """Create a tenant."""
    settings = Settings()
    dsn = database_url(settings)
    migrate.upgrade(dsn)
    try:
        body = TenantCreate(id=tenant_id, name=name)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error

    async def run() -> str:
        database = await Database.connect(dsn, role=migrate.SERVICE_ROLE, min_size=1, max_size=1)
        try:
            async with database.tenant_transaction(PLATFORM_SCOPE) as db:
                tenant = await tenant_service.create(db, body=body)
        finally:
            await database.close()
        return tenant.model_dump_json(indent=2)

    try:
        click.echo(asyncio.run(run()))
    except Problem as problem:
        click.echo(json.dumps(problem.document(None)), err=True)
        sys.exit(1)


@main.command()
@click.option("--tenant", "tenant_id", help="The tenant the token is for.")
@click.option("--role", type=click.Choice([role.value for role in TENANT_ROLES]))
@click.option("--platform", is_flag=True, help="A platform_admin token (tenant lifecycle).")
@click.option("--sub", "subject", default="cli", show_default=True)
@click.option("--ttl", default=None, type=click.IntRange(1, 366 * 24 * 3600), help="Seconds.")
def token(
    tenant_id: str | None, role: str | None, platform: bool, subject: str, ttl: int | None
) -> None:
    """Print a JWT from the built-in issuer."""
    settings = Settings()
    if platform:
        if tenant_id is not None or role is not None:
            raise click.UsageError("--platform takes neither --tenant nor --role")
        click.echo(
            issue_token(
                settings,
                subject=subject,
                tenant_id=None,
                roles=[Role.PLATFORM_ADMIN.value],
                ttl_seconds=ttl,
            )
        )
        return
    if tenant_id is None or role is None:
        raise click.UsageError("give --tenant and --role, or --platform")
    click.echo(
        issue_token(settings, subject=subject, tenant_id=tenant_id, roles=[role], ttl_seconds=ttl)
    )
