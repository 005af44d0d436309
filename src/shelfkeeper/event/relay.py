"""The relay: gives committed events their per-tenant `sequence`, in commit order.

This is the one component that visits every tenant's outbox (cross-tenant by design, kept in
this module); it binds one tenant per transaction, so row-level security stays on.

Writers only INSERT events (sequence NULL) and `pg_notify` the channel `shelfkeeper_events`
with their tenant id; the notification is delivered when (and only if) they commit. The
relay, per tenant and in one short transaction, takes the tenant's relay lock
(`pg_try_advisory_xact_lock`; another relay holding it means the tenant is being done), then
numbers the tenant's committed, unsequenced events after the highest sequence so far. Only
committed rows are visible to it, so a transaction that commits late is numbered in a later
pass, above everything already numbered: sequences only grow, and a consumer that has seen
sequence N never sees an event at or below N appear later. See docs/events.md. The
statement that numbers events also creates their webhook deliveries (docs/webhooks.md).

`run` listens for the writers' notifications on a dedicated connection and relays the
tenants they name; every `poll_interval` seconds it also relays the tenants that have
unnumbered events (`unsequenced_tenant_ids`, one query across tenants), which covers
notifications lost while the listening connection was down. It runs inside
`shelfkeeper serve` (unless `SHELFKEEPER_RELAY_ENABLED=false`) and as `shelfkeeper worker`;
several relays at once are safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable

from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database, Listener
from shelfkeeper.event import repository
from shelfkeeper.kit.waiting import wait_any

logger = logging.getLogger("shelfkeeper.event.relay")

BATCH_SIZE = 1000
"""Events numbered per transaction: short transactions, bounded lock sets."""
BUSY_RETRY_SECONDS = 0.05
"""How soon to retry a tenant whose relay lock another relay held."""


class Sequenced:
    """In-process wake-ups for readers waiting on a tenant's new sequences (the SSE stream)
    and for subscribers to every tenant's (the webhook dispatcher).

    A relay in this process calls `notify` after committing; a reader `wait`s with a timeout,
    since a relay in another process (`shelfkeeper worker`) cannot wake it.
    """

    def __init__(self) -> None:
        self._waiters: defaultdict[str, set[asyncio.Event]] = defaultdict(set)
        self._subscribers: list[Callable[[str], None]] = []

    def notify(self, tenant_id: str) -> None:
        for waiter in self._waiters.get(tenant_id, ()):
            waiter.set()
        for subscriber in list(self._subscribers):
            subscriber(tenant_id)

    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call `callback(tenant_id)` whenever a tenant gets new sequences here (it must not
        block: it runs in the relay's loop)."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[str], None]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(callback)

    async def wait(self, tenant_id: str, *, seconds: float) -> None:
        """Return when `tenant_id` gets new sequences here, or after `seconds`."""
        waiter = asyncio.Event()
        self._waiters[tenant_id].add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waiter.wait()
        finally:
            self._waiters[tenant_id].discard(waiter)
            if not self._waiters[tenant_id]:
                del self._waiters[tenant_id]


sequenced = Sequenced()
"""This process's wake-ups."""


async def assign_sequences(db: Connection, *, tenant_id: str, limit: int) -> int | None:
    """Number up to `limit` of the tenant's committed, unsequenced events, oldest first,
    after its highest sequence, in the caller's transaction (bound to the tenant).

    Returns how many were numbered, or None when another relay holds the tenant's lock (it
    is numbering them; nothing was done).
    """
    if not await repository.try_relay_lock(db, tenant_id=tenant_id):
        return None
    return await repository.assign_sequences(db, tenant_id=tenant_id, limit=limit)


async def relay_tenant(database: Database, *, tenant_id: str, limit: int = BATCH_SIZE) -> bool:
    """Number all the tenant's committed, unsequenced events, `limit` per transaction.

    Returns False when another relay held the tenant's lock (retry later: the other relay
    may have started before the newest events committed).
    """
    while True:
        async with database.tenant_transaction(tenant_id) as db:
            numbered = await assign_sequences(db, tenant_id=tenant_id, limit=limit)
        if numbered is None:
            return False
        if numbered:
            sequenced.notify(tenant_id)
        if numbered < limit:
            return True


async def unsequenced_tenant_ids(database: Database) -> list[str]:
    """The tenants with events not yet numbered (ids only, across tenants): what a poll
    visits, instead of every tenant."""
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        return await repository.unsequenced_tenants(db)


async def run(
    database: Database, *, stop: asyncio.Event, poll_interval: float, limit: int = BATCH_SIZE
) -> None:
    """Relay until `stop` is set: the tenants writers notify about, at once, and every
    tenant every `poll_interval` seconds. A failure is logged and retried, never fatal."""
    loop = asyncio.get_running_loop()
    pending: set[str] = set()
    woken = asyncio.Event()

    def on_notification(tenant_id: str) -> None:
        pending.add(tenant_id)
        woken.set()

    listener: Connection | None = None
    next_poll = loop.time()
    try:
        while not stop.is_set():
            if listener is None or listener.is_closed():
                listener = await _listen(database, on_notification)
            now = loop.time()
            woken.clear()
            due, pending = pending, set()
            if now >= next_poll:
                next_poll = now + poll_interval
                try:
                    due.update(await unsequenced_tenant_ids(database))
                except Exception:
                    logger.exception("relay: listing tenants failed")
            retry = False
            for tenant_id in sorted(due):
                try:
                    done = await relay_tenant(database, tenant_id=tenant_id, limit=limit)
                except Exception:
                    logger.exception("relay: tenant %s failed", tenant_id)
                    done = True  # the next poll retries it
                if not done:
                    pending.add(tenant_id)
                    retry = True
            timeout = BUSY_RETRY_SECONDS if retry else max(0.0, next_poll - loop.time())
            await wait_any(woken, stop, seconds=timeout)
    finally:
        if listener is not None:
            with contextlib.suppress(Exception):
                await listener.close()


async def _listen(database: Database, callback: Listener) -> Connection | None:
    try:
        return await database.listener(repository.CHANNEL, callback)
    except Exception:
        logger.warning("relay: cannot listen for notifications; polling only", exc_info=True)
        return None
