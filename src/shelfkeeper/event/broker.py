"""Publishing events to NATS JetStream (with `SHELFKEEPER_NATS_URL` set).

Every sequenced event is published, as its CloudEvents JSON envelope (the same document
`GET /events` returns), on the subject `shelfkeeper.<tenant>.<type>`, with the event id as
`Nats-Msg-Id`. The stream (`SHELFKEEPER_NATS_STREAM`, default `SHELFKEEPER`, covering
`shelfkeeper.>`) is created when missing.

How far each tenant has been published is its cursor row in `event_cursor` (consumer
`nats:<stream>`). Per tenant and batch, in one transaction bound to the tenant, a publisher:

1. locks the cursor row `FOR UPDATE SKIP LOCKED` (another publisher holding it is publishing
   the tenant: skip it, retry shortly), so several publishers (`serve`, `shelfkeeper worker`,
   several instances) never publish one tenant at once;
2. reads up to `BATCH_SIZE` sequenced events after the cursor, in sequence order;
3. publishes them one by one, awaiting each JetStream acknowledgement (at most
   `PUBLISH_TIMEOUT_SECONDS` each, `BATCH_TIMEOUT_SECONDS` in all), stopping at the first
   failure, so the stream receives a tenant's events in sequence order;
4. advances the cursor to the last acknowledged event and commits.

This transaction holds a network call, against the rule of docs/architecture.md, because
the cursor lock is what keeps publishers of one tenant in turn and the stream in sequence
order; it is kept short and bounded (one batch, timeouts). A crash (or a lost connection to
PostgreSQL) between an acknowledgement and the commit leaves the cursor behind: those events
are published again, and JetStream drops the copies whose `Nats-Msg-Id` it saw within the
stream's duplicate window (`DUPLICATE_WINDOW_SECONDS` for a stream created here). Delivery is
at least once: a copy published after the window is stored again, so consumers still
de-duplicate by event id (or by `sequence`, per tenant).

The loop wakes when the relay of this process has sequenced a tenant's events
(`relay.sequenced`), and every `SHELFKEEPER_RELAY_POLL_INTERVAL_SECONDS` visits the tenants
whose sequenced events are past their cursor (`shelfkeeper_unpublished_tenants`, migration
0019: which covers a relay in another process), never every tenant. A NATS outage is logged
and waited out: the client reconnects by itself and the cursors keep what is still to
publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from shelfkeeper.config import Settings
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database
from shelfkeeper.event import cursor_repository, relay, repository, service
from shelfkeeper.kit.waiting import wait_any

logger = logging.getLogger("shelfkeeper.event.broker")

SUBJECT_PREFIX = "shelfkeeper"
"""Subjects are `<prefix>.<tenant>.<type>`; a stream created here covers `<prefix>.>`."""
BATCH_SIZE = 100
"""Events published per transaction (and cursor lock)."""
BATCHES_PER_VISIT = 20
"""Batches of one tenant before the others get their turn (a long backlog, such as the
whole history when publishing starts, does not hold every other tenant up)."""
PUBLISH_TIMEOUT_SECONDS = 2.0
"""How long one publish waits for its acknowledgement."""
BATCH_TIMEOUT_SECONDS = 10.0
"""How long one batch may hold its transaction open."""
DUPLICATE_WINDOW_SECONDS = 600.0
"""The de-duplication window of a stream created here: JetStream ignores a `Nats-Msg-Id` it
stored this recently."""
BUSY_RETRY_SECONDS = 0.1
"""How soon to retry a tenant another publisher was publishing."""
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits after consecutive failures (NATS unreachable, a publish refused)."""
RECONNECT_WAIT_SECONDS = 2

_SUBJECT_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
"""Tenant ids are slugs (`^[a-z0-9][a-z0-9-]{1,62}$`): always one subject token."""


def consumer_of(stream: str) -> str:
    """The cursor name of publishing into `stream`."""
    return f"nats:{stream}"


def subject_of(tenant_id: str, event_type: str, *, prefix: str = SUBJECT_PREFIX) -> str:
    return f"{prefix}.{tenant_id}.{event_type}"


class PublishFailed(Exception):
    """JetStream did not acknowledge a publish (NATS unreachable, timed out, the stream
    missing or refusing). The events acknowledged before it are kept: the cursor moved."""


@dataclass(frozen=True)
class Batch:
    read: int
    """Events read after the cursor."""
    published: int
    """Of those, acknowledged by JetStream (new or duplicates)."""
    duplicates: int
    """Of those, ones the stream already held (a re-publish)."""
    error: Exception | None


class Publisher:
    """Publishes tenants' sequenced events into one stream, through one connection."""

    def __init__(
        self, jetstream: JetStreamContext, *, stream: str, subject_prefix: str = SUBJECT_PREFIX
    ) -> None:
        self.jetstream = jetstream
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.consumer = consumer_of(stream)

    async def ensure_stream(self) -> None:
        """Create the stream, covering `<prefix>.>`, unless it exists (as configured by an
        operator, whose settings are kept). Raises nats errors when NATS refuses."""
        try:
            await self.jetstream.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            pass
        try:
            await self.jetstream.add_stream(
                name=self.stream,
                subjects=[f"{self.subject_prefix}.>"],
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
            )
            logger.info("broker: created stream %s", self.stream)
        except nats.js.errors.BadRequestError:
            # Another publisher created it first (with other settings than ours, or the
            # subjects overlap another stream's: then stream_info raises for the operator).
            await self.jetstream.stream_info(self.stream)

    async def publish_batch(self, db: Connection, *, tenant_id: str, limit: int) -> Batch | None:
        """Publish up to `limit` of the tenant's events after its cursor and advance the
        cursor past the acknowledged ones, in the caller's transaction (bound to the
        tenant). None when another publisher holds the tenant's cursor. Raises
        cursor_repository.CursorMissing before the tenant's first publication (create the
        cursor in a transaction of its own, as `publish_tenant` does)."""
        cursor = await cursor_repository.lock(db, tenant_id=tenant_id, consumer=self.consumer)
        if cursor is None:
            return None
        rows = await repository.list_sequenced(db, tenant_id=tenant_id, after=cursor, limit=limit)
        published = duplicates = 0
        last = cursor
        error: Exception | None = None
        try:
            async with asyncio.timeout(BATCH_TIMEOUT_SECONDS):
                for row in rows:
                    event = service.envelope(tenant_id, row)
                    acknowledgement = await self.jetstream.publish(
                        subject_of(tenant_id, event.type.value, prefix=self.subject_prefix),
                        event.model_dump_json().encode(),
                        timeout=PUBLISH_TIMEOUT_SECONDS,
                        stream=self.stream,
                        headers={
                            "Nats-Msg-Id": str(event.id),
                            "Content-Type": "application/cloudevents+json",
                        },
                    )
                    published += 1
                    duplicates += bool(acknowledgement.duplicate)
                    last = row["sequence"]
        except (TimeoutError, nats.errors.Error) as failure:
            error = failure
        if last > cursor:
            await cursor_repository.advance(
                db, tenant_id=tenant_id, consumer=self.consumer, sequence=last
            )
        return Batch(read=len(rows), published=published, duplicates=duplicates, error=error)

    async def publish_tenant(
        self,
        database: Database,
        *,
        tenant_id: str,
        limit: int = BATCH_SIZE,
        batches: int = BATCHES_PER_VISIT,
    ) -> bool:
        """Publish the tenant's sequenced events not yet published, `limit` per transaction,
        at most `batches` transactions. Returns False when not done: another publisher held
        the tenant's cursor (retry later: it may have read before the newest events were
        sequenced), or more events remain. Raises PublishFailed (after keeping what was
        acknowledged)."""
        if not _SUBJECT_TOKEN.fullmatch(tenant_id):
            raise ValueError(f"tenant id {tenant_id!r} cannot be a subject token")
        for _ in range(batches):
            try:
                async with database.tenant_transaction(tenant_id) as db:
                    batch = await self.publish_batch(db, tenant_id=tenant_id, limit=limit)
            except cursor_repository.CursorMissing:
                async with database.tenant_transaction(tenant_id) as db:
                    await cursor_repository.create(db, tenant_id=tenant_id, consumer=self.consumer)
                continue
            if batch is None:
                return False
            if batch.duplicates:
                logger.info(
                    "broker: tenant %s: %d event(s) were already in the stream",
                    tenant_id,
                    batch.duplicates,
                )
            if batch.error is not None:
                raise PublishFailed(
                    f"tenant {tenant_id}: published {batch.published} of {batch.read}"
                ) from batch.error
            if batch.read < limit:
                return True
        return False


async def put_cursor(db: Connection, *, tenant_id: str, stream: str, sequence: int) -> None:
    """Set how far the tenant is published into `stream` (in the caller's transaction, bound
    to the tenant): back, to publish again from `sequence + 1` (JetStream drops what it
    stored within its duplicate window), or forward, to skip events."""
    await cursor_repository.put(
        db, tenant_id=tenant_id, consumer=consumer_of(stream), sequence=sequence
    )


async def get_cursor(db: Connection, *, tenant_id: str, stream: str) -> int | None:
    """The last sequence of the tenant published into `stream` (None: never visited)."""
    return await cursor_repository.get(db, tenant_id=tenant_id, consumer=consumer_of(stream))


# --- the loop ------------------------------------------------------------------------------


class _Wakeups:
    """Which tenants to publish next: a tenant this process's relay has just sequenced, at
    once (`relay.sequenced`); and, every `seconds`, the tenants whose sequenced events are
    past the cursor (`unpublished_tenant_ids`: the work of relays in other processes, and
    of tenants a failure left behind). Never every tenant."""

    def __init__(self, *, seconds: float) -> None:
        self.seconds = seconds
        self.due: set[str] = set()
        self.woken = asyncio.Event()
        relay.sequenced.subscribe(self.mark)

    def mark(self, tenant_id: str) -> None:
        self.due.add(tenant_id)
        self.woken.set()

    def later(self, tenant_id: str) -> None:
        """Due at the next pass, without waking the loop now."""
        self.due.add(tenant_id)

    def take(self) -> list[str]:
        self.woken.clear()
        due, self.due = self.due, set()
        return sorted(due)

    async def close(self) -> None:
        relay.sequenced.unsubscribe(self.mark)


async def unpublished_tenant_ids(database: Database, *, consumer: str) -> list[str]:
    """The tenants with sequenced events `consumer` has not published (ids only, across
    tenants): what a poll visits."""
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        return await cursor_repository.unpublished_tenants(db, consumer=consumer)


async def run(
    database: Database,
    settings: Settings,
    *,
    stop: asyncio.Event,
    subject_prefix: str = SUBJECT_PREFIX,
) -> None:
    """Publish to NATS JetStream until `stop` is set (`settings.nats_url` must be set).
    Failures are logged and retried, never fatal."""
    if settings.nats_url is None:
        raise ValueError("SHELFKEEPER_NATS_URL is not set")
    poll_interval = settings.relay_poll_interval_seconds
    wakeups = _Wakeups(seconds=poll_interval)
    try:
        while not stop.is_set():
            client = NATS()
            try:
                if not await _connect(client, settings.nats_url, stop=stop):
                    return
                publisher = Publisher(
                    client.jetstream(), stream=settings.nats_stream, subject_prefix=subject_prefix
                )
                await _publish_until(database, client, publisher, wakeups, stop=stop)
            except Exception:
                logger.exception("broker: failed; starting again in %.0f s", RETRY_SECONDS[-1])
                await wait_any(stop, seconds=RETRY_SECONDS[-1])
            finally:
                with contextlib.suppress(Exception):
                    await client.close()
    finally:
        await wakeups.close()


async def _publish_until(
    database: Database,
    client: NATS,
    publisher: Publisher,
    wakeups: _Wakeups,
    *,
    stop: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    next_listing = loop.time()
    stream_ready = False
    failures = 0
    while not stop.is_set():
        if loop.time() >= next_listing:
            next_listing = loop.time() + wakeups.seconds
            try:
                for tenant_id in await unpublished_tenant_ids(
                    database, consumer=publisher.consumer
                ):
                    wakeups.later(tenant_id)
            except Exception:
                logger.exception("broker: listing tenants with unpublished events failed")
        retry = False
        due = wakeups.take()
        try:
            if not client.is_connected:
                raise PublishFailed("not connected to NATS")
            if not stream_ready:
                await publisher.ensure_stream()
                stream_ready = True
            while due and not stop.is_set():
                tenant_id = due[0]
                try:
                    if not await publisher.publish_tenant(database, tenant_id=tenant_id):
                        wakeups.later(tenant_id)
                        retry = True
                except (PublishFailed, nats.errors.Error):
                    raise
                except Exception:
                    # This tenant's trouble (its transaction failed): the next visit retries.
                    logger.exception("broker: tenant %s failed", tenant_id)
                due.pop(0)
            failures = 0
        except (PublishFailed, nats.errors.Error) as error:
            # NATS's trouble: every tenant waits. The stream may have been deleted: check
            # it again before publishing.
            for tenant_id in due:
                wakeups.later(tenant_id)
            stream_ready = False
            delay = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
            failures += 1
            logger.warning("broker: %s; retrying in %.0f s", _describe(error), delay)
            await wait_any(stop, seconds=delay)
            continue
        if retry:
            timeout = BUSY_RETRY_SECONDS
        else:
            timeout = max(0.0, next_listing - loop.time())
        await wait_any(wakeups.woken, stop, seconds=timeout)


async def _connect(client: NATS, url: str, *, stop: asyncio.Event) -> bool:
    """Connect, retrying for as long as it takes (the client then reconnects by itself
    after an outage); False when `stop` came first."""

    async def error(failure: Exception) -> None:
        logger.warning("broker: NATS: %s", _describe(failure))

    async def disconnected() -> None:
        logger.warning("broker: disconnected from NATS; reconnecting")

    async def reconnected() -> None:
        logger.info("broker: reconnected to NATS")

    connecting = asyncio.create_task(
        client.connect(
            url,
            name="shelfkeeper-publisher",
            connect_timeout=2,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=RECONNECT_WAIT_SECONDS,
            error_cb=error,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
        )
    )
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([connecting, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        return False
    connecting.result()
    logger.info("broker: connected to NATS")
    return True


def _describe(error: BaseException) -> str:
    cause = error.__cause__
    text = f"{type(error).__name__}: {error}".rstrip(": ")
    if cause is not None:
        text += f" ({type(cause).__name__}: {cause})".replace(": )", ")")
    return text
