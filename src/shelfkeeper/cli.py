"""The `shelfkeeper` command line.

Commands that need the database use `DATABASE_URL`, or else the embedded PostgreSQL in the
data directory: started for the command, or joined when another process already runs it,
and left when the command ends; the last process to leave stops it.

SIGINT and SIGTERM end a command by raising `Interrupted` (a `SystemExit`), so the embedded
database is left on every way out. `serve` lets uvicorn shut down gracefully first and then
exits with status 0.

Alembic (`shelfkeeper.db.migrate`) takes most of a second to import, so only the commands
that migrate import it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, TypeAlias
from uuid import UUID

import click
from pydantic import ValidationError

from shelfkeeper.audit import service as audit_service
from shelfkeeper.auth.principal import TENANT_ROLES, Role
from shelfkeeper.auth.tokens import issue_token
from shelfkeeper.config import Settings
from shelfkeeper.db import embedded
from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.db.rls import SERVICE_ROLE
from shelfkeeper.kit.problems import Problem
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate

SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)
SignalHandler: TypeAlias = Callable[[int, FrameType | None], Any] | int | None


class Interrupted(SystemExit):
    """SIGINT or SIGTERM arrived; the process exits with status 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum


class ShutdownSignals:
    """Turns the first SIGINT or SIGTERM into `Interrupted`; later ones are ignored.

    Ignoring the later ones keeps a second Ctrl-C from cutting short the stop of the
    embedded database. Inside `deferred()` the signal is only noted, and raised when the
    block ends, so that starting or stopping PostgreSQL is never abandoned halfway.
    """

    def __init__(self) -> None:
        self.acted = False  # a signal was turned into `Interrupted`
        self.pending: int | None = None  # a signal noted inside `deferred()`
        self.deferring = False

    def install(self) -> dict[signal.Signals, SignalHandler]:
        """Handle the signals from now on; returns the handlers it replaced."""
        self.acted, self.pending, self.deferring = False, None, False
        return {sig: signal.signal(sig, self.handle) for sig in SHUTDOWN_SIGNALS}

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.acted or self.pending is not None:
            return
        if self.deferring:
            self.pending = signum
            return
        self.acted = True
        raise Interrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self.acted = True
            raise Interrupted(signum)


shutdown_signals = ShutdownSignals()


@contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """`DATABASE_URL`, or the embedded PostgreSQL's (started, or joined if already running).

    On the way out, however it is taken, this process leaves the embedded server, which
    stops if no other process uses it.
    """
    if settings.database_url is not None:
        yield settings.database_url
        return
    server = None
    try:
        with shutdown_signals.deferred():
            server = embedded.start_embedded(settings.data_dir)
        click.echo(f"embedded PostgreSQL in {server.pgdata}", err=True)
        yield server.get_uri()
    finally:
        if server is not None:
            with shutdown_signals.deferred():
                embedded.stop_embedded(server)


@contextmanager
def database_errors() -> Iterator[None]:
    """A database that cannot be reached or used ends the command with one line, not a
    traceback (connection refused, unknown database, authentication failed, ...)."""
    import asyncpg
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except DBAPIError as error:  # raised through alembic
        raise click.ClickException(f"database: {error.orig}") from error
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise click.ClickException(f"database: {error}") from error


@click.group()
@click.pass_context
def main(context: click.Context) -> None:
    """Shelfkeeper: multi-tenant inventory and order tracking."""
    previous = shutdown_signals.install()

    def restore() -> None:
        for sig, handler in previous.items():
            if handler is not None:  # None: a handler not set from Python; nothing to restore
                signal.signal(sig, handler)

    context.call_on_close(restore)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve HTTPS with this certificate (PEM; the chain may follow it).",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(exists=True, dir_okay=False),
    help="The certificate's private key (PEM).",
)
def serve(
    host: str, port: int, workers: int, ssl_certfile: str | None, ssl_keyfile: str | None
) -> None:
    """Migrate the database and serve the API.

    Logs are structured (`SHELFKEEPER_LOG_FORMAT`), uvicorn's included; uvicorn's own
    access log is off, since the service writes one access line per request itself.
    """
    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise click.UsageError("give both --ssl-certfile and --ssl-keyfile, or neither")

    import uvicorn

    from shelfkeeper.db import migrate
    from shelfkeeper.observability.logging import configure_logging, logging_config

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    with database_url(settings) as dsn:
        with database_errors():
            migrate.upgrade(dsn)
        os.environ["DATABASE_URL"] = dsn  # the app (and every worker process) joins it
        try:
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
                # Applied in every worker process too: every line goes through structlog.
                log_config=logging_config(settings.log_format, settings.log_level),
                access_log=False,
                ssl_certfile=ssl_certfile,
                ssl_keyfile=ssl_keyfile,
            )
        except Interrupted:
            # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again
            # for the previous handler (ours): the shutdown asked for is done.
            pass


@main.command()
def worker() -> None:
    """Run the event relay as its own process (numbers committed events; see
    docs/events.md); SIGINT or SIGTERM stop it cleanly, with exit status 0.

    Run `serve` with `SHELFKEEPER_RELAY_ENABLED=false` when a worker relays instead; running
    both is safe too (relays take turns per tenant).
    """
    from shelfkeeper import background
    from shelfkeeper.db import migrate
    from shelfkeeper.observability.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)

    async def run(dsn: str) -> None:
        database = await Database.connect(dsn, role=SERVICE_ROLE, min_size=1, max_size=2)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Inside the loop a signal only asks the relay to stop: it finishes the tenant at
        # hand, closes its connections, and the command returns normally.
        for sig in SHUTDOWN_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        try:
            click.echo("relay running", err=True)
            await background.run(database, settings, stop=stop)
        finally:
            for sig in SHUTDOWN_SIGNALS:
                loop.remove_signal_handler(sig)
                signal.signal(sig, shutdown_signals.handle)
            await database.close()

    with database_url(settings) as dsn, database_errors():
        migrate.upgrade(dsn)
        asyncio.run(run(dsn))
    click.echo("relay stopped", err=True)


@main.command(name="migrate")
@click.option("--check", is_flag=True, help="Only check that the schema matches the models.")
def migrate_command(check: bool) -> None:
    """Apply schema migrations to the configured database."""
    from alembic.util import CommandError

    from shelfkeeper.db import migrate

    with database_url(Settings()) as dsn, database_errors():
        try:
            if check:
                migrate.check(dsn)
            else:
                migrate.upgrade(dsn)
        except CommandError as error:  # also alembic's "new upgrade operations detected"
            raise click.ClickException(str(error)) from error
    click.echo("ok")


@main.group()
def tenants() -> None:
    """Manage tenants."""


@tenants.command(name="create")
@click.argument("tenant_id")
@click.option("--name", required=True)
def create_tenant(tenant_id: str, name: str) -> None:
    """Create a tenant (the id: lowercase letters, digits and `-`, 2 to 63 long)."""
    try:
        body = TenantCreate(id=tenant_id, name=name)
    except ValidationError as error:
        first = error.errors()[0]
        option = {"id": "'TENANT_ID'", "name": "'--name'"}.get(str(first["loc"][0]))
        raise click.BadParameter(first["msg"], param_hint=option) from None

    from shelfkeeper.db import migrate  # only now: a refused request does not wait for it

    async def run(dsn: str) -> str:
        database = await Database.connect(dsn, role=SERVICE_ROLE, min_size=1, max_size=1)
        try:
            # audited in the platform trail, as `cli:<os user>`, in the creating transaction
            async with audit_service.platform_transaction(database) as db:
                tenant = await tenant_service.create(db, body=body)
        finally:
            await database.close()
        return tenant.model_dump_json(indent=2)

    with database_url(Settings()) as dsn, database_errors():
        migrate.upgrade(dsn)
        try:
            created = asyncio.run(run(dsn))
        except Problem as problem:
            click.echo(json.dumps(problem.document(None)), err=True)
            sys.exit(1)
    click.echo(created)


@main.command()
@click.option("--tenant", "tenant_id", help="Check only this tenant (default: every tenant).")
def verify(tenant_id: str | None) -> None:
    """Recompute every stock level from its movements; exit 1 on any drift."""
    from shelfkeeper.inventory.ledger import Drift, find_drift

    async def run(dsn: str) -> tuple[list[str], list[Drift]]:
        database = await Database.connect(dsn, role=SERVICE_ROLE, min_size=1, max_size=1)
        try:
            async with database.tenant_transaction(PLATFORM_SCOPE) as db:
                tenant_ids = await tenant_service.all_ids(db)
            if tenant_id is not None:
                if tenant_id not in tenant_ids:
                    raise click.BadParameter(f"no tenant `{tenant_id}`", param_hint="'--tenant'")
                tenant_ids = [tenant_id]
            drift: list[Drift] = []
            for each in tenant_ids:
                async with database.tenant_transaction(each) as db:
                    drift.extend(await find_drift(db, tenant_id=each))
        finally:
            await database.close()
        return tenant_ids, drift

    with database_url(Settings()) as dsn, database_errors():
        checked, drift = asyncio.run(run(dsn))
    for found in drift:
        click.echo(
            f"DRIFT tenant={found.tenant_id} variant={found.variant_id} "
            f"location={found.location_id}: {found.problem}"
        )
    click.echo(f"{len(checked)} tenant(s) checked, {len(drift)} problem(s) found")
    if drift:
        sys.exit(1)


@main.command()
@click.option("--tenant", "tenant_id", help="The tenant the token is for.")
@click.option("--role", type=click.Choice([role.value for role in TENANT_ROLES]))
@click.option("--platform", is_flag=True, help="A platform_admin token (tenant lifecycle).")
@click.option("--sub", "subject", default="cli", show_default=True)
@click.option("--ttl", default=None, type=click.IntRange(1, 366 * 24 * 3600), help="Seconds.")
@click.option(
    "--location",
    "location_ids",
    multiple=True,
    type=click.UUID,
    help="A store clerk's location (repeatable): stock may change only there.",
)
def token(
    tenant_id: str | None,
    role: str | None,
    platform: bool,
    subject: str,
    ttl: int | None,
    location_ids: tuple[UUID, ...],
) -> None:
    """Print a JWT from the built-in issuer."""
    settings = Settings()
    if platform:
        if tenant_id is not None or role is not None or location_ids:
            raise click.UsageError("--platform takes neither --tenant, --role nor --location")
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
        issue_token(
            settings,
            subject=subject,
            tenant_id=tenant_id,
            roles=[role],
            ttl_seconds=ttl,
            location_ids=location_ids or None,
        )
    )


@main.command()
@click.option("--tenant", "tenant_id", default="demo", show_default=True)
@click.option("--name", default="Demo Home Goods", show_default=True)
def demo(tenant_id: str, name: str) -> None:
    """Create a demo tenant with locations, items, stock and orders (all or nothing).

    An existing tenant is refused (exit status 1) and left as it was.
    """
    from shelfkeeper import demo as demo_data
    from shelfkeeper.order import blind_index

    try:
        TenantCreate(id=tenant_id, name=name)
    except ValidationError as error:
        first = error.errors()[0]
        option = {"id": "'--tenant'", "name": "'--name'"}.get(str(first["loc"][0]))
        raise click.BadParameter(first["msg"], param_hint=option) from None

    from shelfkeeper.db import migrate

    settings = Settings()

    async def run(dsn: str) -> dict[str, Any]:
        database = await Database.connect(dsn, role=SERVICE_ROLE, min_size=1, max_size=1)
        try:
            # audited as `cli:<os user>`: the platform trail and the new tenant's own
            origin = audit_service.cli_origin()
            async with audit_service.platform_transaction(database, origin=origin) as db:
                loaded = await demo_data.load(
                    db,
                    tenant_id=tenant_id,
                    name=name,
                    blind_index=blind_index.for_settings(settings),
                    origin=origin,
                )
        finally:
            await database.close()
        return loaded.summary()

    with database_url(settings) as dsn, database_errors():
        migrate.upgrade(dsn)
        try:
            summary = asyncio.run(run(dsn))
        except Problem as problem:
            click.echo(json.dumps(problem.document(None)), err=True)
            sys.exit(1)
    click.echo(json.dumps(summary, indent=2))
    click.echo(f"try: shelfkeeper token --tenant {tenant_id} --role admin", err=True)


@main.group()
def keys() -> None:
    """Manage data keys, master keys and key shares (docs/privacy.md)."""


def _run_keys_job(job: Callable[[Database], Any]) -> Any:
    """Run `job(database)` against the configured database (migrated first), as the
    service role, with this environment's master keys and key store."""
    from shelfkeeper.db import migrate
    from shelfkeeper.privacy import service as privacy_service

    settings = Settings()
    privacy_service.use_master_key(settings)

    async def run(dsn: str) -> Any:
        database = await Database.connect(dsn, role=SERVICE_ROLE, min_size=1, max_size=2)
        try:
            return await job(database)
        finally:
            await database.close()

    with database_url(settings) as dsn, database_errors():
        migrate.upgrade(dsn)
        return asyncio.run(run(dsn))


KEY_ENTITY = "data_key"


async def _audit_key_operation(
    database: Database, *, tenant_id: str, action: str, after: dict[str, Any]
) -> None:
    """One platform entry for a key operation on a tenant, as `cli:<os user>`, written
    once the operation has ended (it spans several transactions of its own)."""
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        await audit_service.record_platform_operation(
            db,
            tenant_id=tenant_id,
            action=action,
            entity_type=KEY_ENTITY,
            entity_id=tenant_id,
            after=after,
        )


@keys.command(name="rotate-data-key")
@click.option("--tenant", "tenant_id", help="Rotate this tenant's data key.")
@click.option("--all", "every", is_flag=True, help="Rotate every tenant's data key.")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--wait-timeout",
    default=600.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds to wait for transactions older than the new key before giving up "
    "(the old keys are then kept).",
)
def rotate_data_key(
    tenant_id: str | None, every: bool, batch_size: int, wait_timeout: float
) -> None:
    """Give tenants a new data key, re-seal their data under it, delete the old keys.

    Safe while the service runs. Prints one JSON line per tenant; exits 1 if a tenant's
    rotation could not finish (its old keys are kept, its data stays readable).
    """
    from shelfkeeper.privacy import rotation

    if every == (tenant_id is not None):
        raise click.UsageError("give --tenant ID or --all")

    async def job(database: Database) -> list[tuple[str, dict[str, Any] | str]]:
        targets = await rotation.tenant_ids(database)
        if tenant_id is not None:
            if tenant_id not in targets:
                raise click.BadParameter(f"no tenant `{tenant_id}`", param_hint="'--tenant'")
            targets = [tenant_id]
        results: list[tuple[str, dict[str, Any] | str]] = []
        for each in targets:
            try:
                done = await rotation.rotate_data_key(
                    database,
                    tenant_id=each,
                    batch_size=batch_size,
                    wait_timeout_seconds=wait_timeout,
                )
                results.append((each, done.summary()))
                after: dict[str, Any] = {
                    "version": done.version,
                    # a count: the fields' names (`sales_order.customer`, ...) would be
                    # redacted as personal data by the trail's rules
                    "values_resealed": sum(done.resealed.values()),
                    "deleted_versions": done.deleted_versions,
                }
            except (rotation.RotationIncomplete, rotation.DataKeyUnavailable) as error:
                results.append((each, str(error)))
                after = {"completed": False, "error": str(error)}
            await _audit_key_operation(
                database, tenant_id=each, action="rotate_data_key", after=after
            )
        return results

    failed = False
    for each, result in _run_keys_job(job):
        if isinstance(result, str):
            failed = True
            click.echo(json.dumps({"tenant": each, "error": result}))
        else:
            click.echo(json.dumps(result))
    if failed:
        sys.exit(1)


@keys.command()
def rewrap() -> None:
    """Wrap every tenant's data keys anew under the current master key and a key share.

    Keys wrapped under a retired master key unwrap with `SHELFKEEPER_RETIRED_MASTER_KEYS`;
    `keys status` tells when none is left. Exits 1 if a tenant's keys did not unwrap.
    """
    from shelfkeeper.privacy import rotation

    async def job(database: Database) -> tuple[dict[str, int], dict[str, str]]:
        rewrapped: dict[str, int] = {}
        failed: dict[str, str] = {}
        for each in await rotation.tenant_ids(database):
            try:
                done = await rotation.rewrap(database, tenant_id=each)
            except rotation.DataKeyUnavailable as error:
                failed[each] = str(error)
                await _audit_key_operation(
                    database,
                    tenant_id=each,
                    action="rewrap",
                    after={"completed": False, "error": str(error)},
                )
                continue
            if done.rewrapped:
                rewrapped[each] = done.rewrapped
                await _audit_key_operation(
                    database, tenant_id=each, action="rewrap", after={"rewrapped": done.rewrapped}
                )
        return rewrapped, failed

    rewrapped, failed = _run_keys_job(job)
    click.echo(json.dumps({"rewrapped": rewrapped, "failed": failed}, indent=2))
    if failed:
        sys.exit(1)


@keys.command()
def status() -> None:
    """Print, as JSON, the data keys by master key and wrapping scheme, the tenants without
    a key share, and the shares whose tenant is gone."""
    from shelfkeeper.privacy import rotation

    click.echo(json.dumps(_run_keys_job(rotation.status), indent=2))


@keys.command()
def prune() -> None:
    """Destroy the key shares of tenants that no longer exist; print their ids (JSON)."""
    from shelfkeeper.privacy import rotation

    async def job(database: Database) -> list[str]:
        pruned = await rotation.prune(database)
        for each in pruned:
            await _audit_key_operation(
                database, tenant_id=each, action="prune_share", after={"share_destroyed": True}
            )
        return pruned

    pruned = _run_keys_job(job)
    click.echo(json.dumps({"pruned": pruned}))


if __name__ == "__main__":
    main()
