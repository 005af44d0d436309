"""The webhook dispatcher: sends due deliveries, at least once, and records what happened.

A delivery is leased in one short transaction (`FOR UPDATE SKIP LOCKED`, `locked_until`),
sent with no transaction open, and its outcome recorded in another. A process killed
mid-send leaves a lease that simply runs out; the next pass of any dispatcher sends the
delivery again. Several dispatchers at once (`serve` and `shelfkeeper worker`) never lease
the same delivery together, and a subject's deliveries to one endpoint go one at a time, in
sequence order (see `webhook_repository.CLAIM_DUE`).

Like the relay this visits every tenant (cross-tenant by design, kept here), binding one
tenant per transaction so row-level security stays on: the tenants the relay in this process
has just numbered events for and the tenants with deliveries still pending, every
`poll_seconds`; every tenant every `SHELFKEEPER_RELAY_POLL_INTERVAL_SECONDS`.

A suspended tenant's deliveries are held: `shelfkeeper_due_delivery_tenants()` names only
active tenants, and a tenant woken by the relay is entered (its status checked) before any
delivery is leased. They stay pending, unattempted (so they count toward no endpoint's
disabling), and go out once the tenant is reactivated, at the next scan.

Sending (`send`): the URL is parsed and its host resolved, every address is checked by
`kit.outbound` (unless private networks are allowed), and the request goes to a checked
address, never to the name again (no DNS rebinding); `Host` and the TLS server name stay
the URL's host, so virtual hosting and certificate checks work as usual. No redirects are
followed (a 3xx is a failure), proxies from the environment are ignored, and the whole
attempt, name resolution included, is bounded by `SHELFKEEPER_WEBHOOK_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from shelfkeeper import __version__
from shelfkeeper.config import Settings
from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.event import relay
from shelfkeeper.event import webhook_service as service
from shelfkeeper.kit import outbound
from shelfkeeper.kit.waiting import wait_any
from shelfkeeper.observability import metrics
from shelfkeeper.tenant import service as tenant_service

logger = logging.getLogger("shelfkeeper.event.webhook")

POLL_SECONDS = 1.0
CONCURRENCY = 32
"""Deliveries in flight at once, per dispatcher."""
LEASE_MARGIN_SECONDS = 5.0
"""A lease lasts the attempt's timeout plus this: time to record the outcome."""
USER_AGENT = f"Shelfkeeper-Webhooks/{__version__}"


def signed_request(claim: service.Claim, *, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body (the event's CloudEvents JSON) and the Standard Webhooks headers."""
    body = claim.event.model_dump_json().encode()
    message_id = str(claim.event.id)
    signature = Webhook(claim.secret).sign(msg_id=message_id, timestamp=now, data=body)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return body, headers


async def send(
    client: httpx.AsyncClient,
    claim: service.Claim,
    *,
    allow_private: bool,
    resolver: outbound.Resolver,
    timeout_seconds: float,
) -> tuple[service.Outcome, str]:
    """Make one attempt. Returns its outcome and its metrics label (`delivered`,
    `http_error`, `network_error`, `refused`). A target the guard refuses is refused before
    any connection is opened."""
    started_at = datetime.now(UTC)
    clock = time.monotonic()

    def outcome(
        label: str, *, status: int | None = None, error: str | None = None
    ) -> tuple[service.Outcome, str]:
        latency = time.monotonic() - clock
        return service.Outcome(started_at, latency, status_code=status, error=error), label

    body, headers = signed_request(claim, now=started_at)
    try:
        async with asyncio.timeout(timeout_seconds):
            try:
                url = httpx.URL(claim.url)
                target = outbound.parse(claim.url)
                addresses = await outbound.checked_addresses(
                    target, allow_private=allow_private, resolver=resolver
                )
            except (outbound.InvalidTarget, outbound.ForbiddenTarget, httpx.InvalidURL) as error:
                return outcome("refused", error=f"refused: {error}")
            except outbound.UnresolvableTarget as error:
                return outcome("network_error", error=str(error))
            # The host as sent on the wire (IDNA-encoded), for `Host` and the TLS server name.
            host = url.raw_host.decode("ascii")
            headers["host"] = url.netloc.decode("ascii")
            extensions = {"sni_hostname": host} if target.scheme == "https" else {}
            last_error = "no address"
            for address in addresses:
                request = client.build_request(
                    "POST",
                    url.copy_with(host=str(address)),
                    headers=headers,
                    content=body,
                    extensions=extensions,
                )
                try:
                    response = await client.send(request, stream=True, follow_redirects=False)
                except httpx.ConnectError as error:
                    last_error = f"connect to {address}: {error or type(error).__name__}"
                    continue
                await response.aclose()
                if 200 <= response.status_code < 300:
                    return outcome("delivered", status=response.status_code)
                return outcome(
                    "http_error",
                    status=response.status_code,
                    error=f"HTTP {response.status_code}",
                )
            return outcome("network_error", error=last_error)
    except TimeoutError:
        return outcome("network_error", error=f"timed out after {timeout_seconds:g}s")
    except httpx.HTTPError as error:
        return outcome("network_error", error=f"{type(error).__name__}: {error}")


class Dispatcher:
    """One process's dispatcher (see the module's docstring)."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        client: httpx.AsyncClient,
        resolver: outbound.Resolver,
    ) -> None:
        self.database = database
        self.settings = settings
        self.client = client
        self.resolver = resolver
        self.busy: set[str] = set()
        self.woken = asyncio.Event()
        self.in_flight: set[asyncio.Task[None]] = set()

    @property
    def lease_seconds(self) -> float:
        return self.settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS

    def wake(self, tenant_id: str) -> None:
        self.busy.add(tenant_id)
        self.woken.set()

    async def run(self, stop: asyncio.Event, *, poll_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time()
        relay.sequenced.subscribe(self.wake)
        try:
            while not stop.is_set():
                self.woken.clear()
                due = set(self.busy)
                if loop.time() >= next_scan:
                    next_scan = loop.time() + self.settings.relay_poll_interval_seconds
                    try:
                        due.update(await self.due_tenant_ids())
                    except Exception:
                        logger.exception("webhooks: listing tenants failed")
                for tenant_id in sorted(due):
                    room = CONCURRENCY - len(self.in_flight)
                    if room <= 0:
                        self.busy.add(tenant_id)
                        continue
                    try:
                        await self.dispatch_tenant(tenant_id, limit=room)
                    except Exception:
                        logger.exception("webhooks: tenant %s failed", tenant_id)
                await wait_any(self.woken, stop, seconds=poll_seconds)
        finally:
            relay.sequenced.unsubscribe(self.wake)
            if self.in_flight:
                await asyncio.gather(*self.in_flight, return_exceptions=True)

    async def due_tenant_ids(self) -> list[str]:
        """The tenants with deliveries due now: the poll visits only those."""
        async with self.database.tenant_transaction(PLATFORM_SCOPE) as db:
            return await service.due_tenants(db)

    async def dispatch_tenant(self, tenant_id: str, *, limit: int) -> int:
        """Lease up to `limit` of the tenant's due deliveries and start sending them; none
        while the tenant is suspended (or gone): its deliveries wait, pending."""
        async with self.database.tenant_transaction(tenant_id) as db:
            try:
                await tenant_service.enter(db, tenant_id)
            except (tenant_service.TenantSuspended, tenant_service.TenantNotFound):
                self.busy.discard(tenant_id)
                return 0
            claims = await service.claim(
                db, tenant_id=tenant_id, limit=limit, lease_seconds=self.lease_seconds
            )
            pending = await service.has_pending(db, tenant_id=tenant_id)
        if pending:
            self.busy.add(tenant_id)
        else:
            self.busy.discard(tenant_id)
        for claim in claims:
            task = asyncio.create_task(self.deliver(claim))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        return len(claims)

    async def deliver(self, claim: service.Claim) -> None:
        """Send one leased delivery, then record the outcome (a failure to record leaves the
        lease to run out: the delivery is sent again)."""
        try:
            outcome, label = await send(
                self.client,
                claim,
                allow_private=self.settings.webhook_allow_private_networks,
                resolver=self.resolver,
                timeout_seconds=self.settings.webhook_timeout_seconds,
            )
        except Exception as error:  # recorded as a failed attempt, never a stuck delivery
            logger.exception("webhooks: sending delivery %s failed", claim.delivery_id)
            outcome = service.Outcome(datetime.now(UTC), 0.0, error=type(error).__name__)
            label = "network_error"
        metrics.count_webhook_delivery(label, outcome.latency_seconds)
        if label != "delivered":
            logger.info(
                "webhooks: attempt %d of delivery %s (tenant %s, webhook %s) failed: %s",
                claim.attempt,
                claim.delivery_id,
                claim.tenant_id,
                claim.endpoint_id,
                outcome.error,
            )
        try:
            async with self.database.tenant_transaction(claim.tenant_id) as db:
                await service.record_outcome(
                    db,
                    claim,
                    outcome,
                    schedule=self.settings.webhook_retry_schedule,
                    disable_after=self.settings.webhook_disable_after_failures,
                )
        except Exception:
            logger.exception("webhooks: recording delivery %s failed", claim.delivery_id)
        finally:
            self.wake(claim.tenant_id)


def new_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The dispatcher's HTTP client: no redirects, no proxies or netrc from the environment,
    the configured timeout per phase. No keep-alive: requests go to IP addresses, and a
    pooled connection to one address must not carry a request for another host name (its
    TLS server name was another's)."""
    return httpx.AsyncClient(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0),
    )


async def run(
    database: Database,
    settings: Settings,
    *,
    stop: asyncio.Event,
    poll_seconds: float = POLL_SECONDS,
    transport: httpx.AsyncBaseTransport | None = None,
    resolver: outbound.Resolver = outbound.system_resolver,
) -> None:
    """Dispatch until `stop` is set; attempts under way are finished first. A failure is
    logged and retried, never fatal."""
    async with new_client(settings, transport) as client:
        dispatcher = Dispatcher(database, settings, client=client, resolver=resolver)
        logger.info("webhooks: dispatcher running")
        await dispatcher.run(stop, poll_seconds=poll_seconds)
