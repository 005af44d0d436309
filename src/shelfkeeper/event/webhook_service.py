"""Webhook rules: endpoints (admin configuration), their deliveries, and what an attempt's
outcome means (retry when, give up when, disable the endpoint when). See docs/webhooks.md.

The HTTP side of a delivery is `webhook_dispatcher`'s; this module decides, in the caller's
transaction, and never sends anything.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

from shelfkeeper.auth.principal import Principal
from shelfkeeper.db.database import Connection, Record
from shelfkeeper.event import service as event_service
from shelfkeeper.event import webhook_repository as repository
from shelfkeeper.event.schemas import CloudEvent, EventType
from shelfkeeper.event.webhook_schemas import (
    DeliveryAttempt,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookUpdate,
)
from shelfkeeper.kit import outbound
from shelfkeeper.kit.pagination import TIMESTAMP_FIELD, Page, SortField, keyset, page_of
from shelfkeeper.kit.problems import Conflict, NotFound, VersionMismatch, validation_error
from shelfkeeper.kit.signing import new_secret
from shelfkeeper.privacy import service as privacy_service

SECRET_FIELD = "webhook_endpoint.secret"
"""The field a signing secret is sealed for (associated data of its ciphertext)."""
SORT_FIELDS = {
    "created_at": SortField("created_at", TIMESTAMP_FIELD),
    "updated_at": SortField("updated_at", TIMESTAMP_FIELD),
}
DELIVERY_SORT_FIELDS = {"created_at": SortField("created_at", TIMESTAMP_FIELD)}
JITTER = 0.2
"""A retry waits its scheduled delay times a random factor in [1 - JITTER, 1 + JITTER], so
deliveries that failed together do not all come back at the same instant."""
MAX_ERROR_LENGTH = 500
RESOLVE_TIMEOUT_SECONDS = 5.0
"""The longest a request waits for the URL's name to resolve (it holds a transaction)."""

AttemptStatus = Literal["succeeded", "pending", "failed", "superseded"]


class WebhookNotFound(NotFound):
    title = "Webhook not found"


class DeliveryNotFound(NotFound):
    title = "Delivery not found"


class DeliveryInFlight(Conflict):
    slug = "delivery-in-flight"
    title = "An attempt of this delivery is under way"


def _tenant(principal: Principal) -> str:
    assert principal.tenant_id is not None
    return principal.tenant_id


def _webhook(row: Record) -> Webhook:
    return Webhook(
        id=row["id"],
        url=row["url"],
        events=[EventType(event) for event in row["events"]],
        description=row["description"],
        enabled=row["enabled"],
        consecutive_failures=row["consecutive_failures"],
        disabled_at=row["disabled_at"],
        version=row["version"],
        created_by=row["created_by"],
        updated_by=row["updated_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _delivery(row: Record, attempts: Sequence[Record]) -> WebhookDelivery:
    return WebhookDelivery(
        id=row["id"],
        webhook_id=row["endpoint_id"],
        event_id=row["event_id"],
        event_type=EventType(row["event_type"]),
        event_sequence=row["event_sequence"],
        subject=row["subject"],
        status=row["status"],
        attempt_count=row["attempts"],
        next_attempt_at=row["next_attempt_at"] if row["status"] == "pending" else None,
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        delivered_at=row["delivered_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        attempts=[
            DeliveryAttempt(
                attempt=attempt["attempt"],
                started_at=attempt["started_at"],
                status_code=attempt["status_code"],
                latency_seconds=attempt["latency_seconds"],
                error=attempt["error"],
            )
            for attempt in attempts
        ],
    )


async def check_url(url: str, *, allow_private: bool, resolver: outbound.Resolver) -> None:
    """Refuse (422 on `url`) a URL whose host is, or resolves to, an address that is not
    public, unless private networks are allowed. A name that does not resolve (yet), or not
    within `RESOLVE_TIMEOUT_SECONDS`, is accepted: every delivery checks again before
    connecting."""
    try:
        target = outbound.parse(url)
        if not allow_private:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                await outbound.checked_addresses(target, allow_private=False, resolver=resolver)
    except (outbound.UnresolvableTarget, TimeoutError):
        return
    except (outbound.InvalidTarget, outbound.ForbiddenTarget) as error:
        raise validation_error(["body", "url"], str(error), "url_forbidden") from error


async def create(
    db: Connection,
    principal: Principal,
    *,
    body: WebhookCreate,
    allow_private: bool,
    resolver: outbound.Resolver,
) -> WebhookCreated:
    """Create an endpoint and its secret (returned this once). Raises ValidationFailed (422)
    for a forbidden URL."""
    await check_url(body.url, allow_private=allow_private, resolver=resolver)
    secret = new_secret()
    values = body.model_dump()
    values["events"] = [event.value for event in body.events]
    tenant_id = _tenant(principal)
    sealer = await privacy_service.sealer(db, tenant_id=tenant_id)
    row = await repository.insert_endpoint(
        db,
        tenant_id=tenant_id,
        values=values,
        secret=sealer.seal_json(SECRET_FIELD, secret),
        actor=principal.actor,
    )
    return WebhookCreated(**_webhook(row).model_dump(), secret=secret)


async def get(db: Connection, principal: Principal, *, webhook_id: UUID) -> Webhook:
    """Raises WebhookNotFound (404), also for another tenant's endpoint."""
    row = await repository.get_endpoint(db, tenant_id=_tenant(principal), endpoint_id=webhook_id)
    if row is None:
        raise WebhookNotFound()
    return _webhook(row)


async def list_webhooks(
    db: Connection,
    principal: Principal,
    *,
    sort: str,
    cursor: str | None,
    limit: int,
    enabled: bool | None = None,
) -> Page[Webhook]:
    page = keyset(sort=sort, fields=SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=3)
    rows = await repository.list_endpoints(
        db, tenant_id=_tenant(principal), keyset=page, enabled=enabled
    )
    sort_name = sort.removeprefix("-")
    return page_of(
        [_webhook(row) for row in rows],
        limit=limit,
        sort=sort,
        sort_value=lambda webhook: getattr(webhook, sort_name),
        row_id=lambda webhook: webhook.id,
    )


async def update(
    db: Connection,
    principal: Principal,
    *,
    webhook_id: UUID,
    body: WebhookUpdate,
    expected_version: int | None,
    allow_private: bool,
    resolver: outbound.Resolver,
) -> Webhook:
    """Apply a partial update. Raises WebhookNotFound (404), VersionMismatch (412),
    ValidationFailed (422) for a forbidden URL."""
    changes = body.changes()
    if body.url is not None:
        await check_url(body.url, allow_private=allow_private, resolver=resolver)
    if body.events is not None:
        changes["events"] = [event.value for event in body.events]
    row = await repository.update_endpoint(
        db,
        tenant_id=_tenant(principal),
        endpoint_id=webhook_id,
        changes=changes,
        expected_version=expected_version,
        actor=principal.actor,
    )
    if row is None:
        await get(db, principal, webhook_id=webhook_id)
        raise VersionMismatch("The webhook has changed since you read it.")
    return _webhook(row)


async def delete(
    db: Connection, principal: Principal, *, webhook_id: UUID, expected_version: int | None
) -> None:
    """Delete the endpoint with its deliveries. Raises WebhookNotFound, VersionMismatch."""
    deleted = await repository.delete_endpoint(
        db, tenant_id=_tenant(principal), endpoint_id=webhook_id, expected_version=expected_version
    )
    if not deleted:
        await get(db, principal, webhook_id=webhook_id)
        raise VersionMismatch("The webhook has changed since you read it.")


async def _with_attempts(
    db: Connection, *, tenant_id: str, rows: Sequence[Record]
) -> list[WebhookDelivery]:
    attempts = await repository.attempts_of(
        db, tenant_id=tenant_id, delivery_ids=[row["id"] for row in rows]
    )
    by_delivery: dict[UUID, list[Record]] = {}
    for attempt in attempts:
        by_delivery.setdefault(attempt["delivery_id"], []).append(attempt)
    return [_delivery(row, by_delivery.get(row["id"], [])) for row in rows]


async def list_deliveries(
    db: Connection,
    principal: Principal,
    *,
    webhook_id: UUID,
    sort: str,
    cursor: str | None,
    limit: int,
    status: str | None = None,
) -> Page[WebhookDelivery]:
    """The endpoint's deliveries with their attempts. Raises WebhookNotFound (404)."""
    tenant_id = _tenant(principal)
    await get(db, principal, webhook_id=webhook_id)
    page = keyset(
        sort=sort, fields=DELIVERY_SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=4
    )
    rows = await repository.list_deliveries(
        db, tenant_id=tenant_id, endpoint_id=webhook_id, keyset=page, status=status
    )
    return page_of(
        await _with_attempts(db, tenant_id=tenant_id, rows=rows),
        limit=limit,
        sort=sort,
        sort_value=lambda delivery: delivery.created_at,
        row_id=lambda delivery: delivery.id,
    )


async def get_delivery(
    db: Connection, principal: Principal, *, webhook_id: UUID, delivery_id: UUID
) -> WebhookDelivery:
    """Raises DeliveryNotFound (404)."""
    tenant_id = _tenant(principal)
    row = await repository.get_delivery(
        db, tenant_id=tenant_id, endpoint_id=webhook_id, delivery_id=delivery_id
    )
    if row is None:
        raise DeliveryNotFound()
    return (await _with_attempts(db, tenant_id=tenant_id, rows=[row]))[0]


async def redeliver(
    db: Connection, principal: Principal, *, webhook_id: UUID, delivery_id: UUID
) -> WebhookDelivery:
    """Send the delivery again: pending, due now, with a fresh retry schedule (its attempt
    numbers continue). Raises DeliveryNotFound (404), DeliveryInFlight (409)."""
    tenant_id = _tenant(principal)
    row = await repository.redeliver(
        db, tenant_id=tenant_id, endpoint_id=webhook_id, delivery_id=delivery_id
    )
    if row is None:
        await get_delivery(db, principal, webhook_id=webhook_id, delivery_id=delivery_id)
        raise DeliveryInFlight("Wait for the attempt under way to finish, then retry.")
    return (await _with_attempts(db, tenant_id=tenant_id, rows=[row]))[0]


# The dispatcher's side.


@dataclass(frozen=True)
class Claim:
    """A leased delivery: everything needed to send it, and to record its outcome."""

    tenant_id: str
    delivery_id: UUID
    endpoint_id: UUID
    lease: UUID
    attempt: int
    """The attempt's number over the delivery's whole life (for the log)."""
    scheduled_attempt: int
    """The attempt's number within the current retry schedule (1 = the first try)."""
    url: str
    secret: str
    event: CloudEvent


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to."""

    started_at: datetime
    latency_seconds: float
    status_code: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300


async def claim(db: Connection, *, tenant_id: str, limit: int, lease_seconds: float) -> list[Claim]:
    """Lease up to `limit` of the tenant's due deliveries, in the caller's transaction (bound
    to the tenant); the lease ends after `lease_seconds` if no outcome is recorded."""
    rows = await repository.claim_due(
        db, tenant_id=tenant_id, limit=limit, lease_seconds=lease_seconds
    )
    secrets_of = {
        row["endpoint_id"]: await _open_secret(db, tenant_id=tenant_id, stored=row["secret"])
        for row in rows
    }
    return [
        Claim(
            tenant_id=tenant_id,
            delivery_id=row["delivery_id"],
            endpoint_id=row["endpoint_id"],
            lease=row["lease"],
            attempt=row["attempts"],
            scheduled_attempt=row["scheduled_attempts"],
            url=row["url"],
            secret=secrets_of[row["endpoint_id"]],
            event=event_service.envelope(tenant_id, row),
        )
        for row in rows
    ]


async def _open_secret(db: Connection, *, tenant_id: str, stored: bytes) -> str:
    """An endpoint's signing secret: sealed under the tenant's data key, or (written before
    secrets were sealed, migration 0013) its plain UTF-8 bytes."""
    if not privacy_service.is_sealed(stored):
        return stored.decode()
    return str(
        await privacy_service.open_json(db, tenant_id=tenant_id, field=SECRET_FIELD, sealed=stored)
    )


async def due_tenants(db: Connection) -> list[str]:
    """The tenants with deliveries due now (cross-tenant: ids only; for the dispatcher's
    poll)."""
    return await repository.due_delivery_tenants(db)


async def has_pending(db: Connection, *, tenant_id: str) -> bool:
    return await repository.has_pending(db, tenant_id=tenant_id)


def retry_delay(
    schedule: Sequence[float],
    scheduled_attempt: int,
    *,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float | None:
    """Seconds to wait before retrying after failed attempt number `scheduled_attempt`
    (1-based) of a schedule, with jitter; None when the schedule is spent."""
    if scheduled_attempt > len(schedule):
        return None
    return max(0.0, schedule[scheduled_attempt - 1] * uniform(1 - JITTER, 1 + JITTER))


async def record_outcome(
    db: Connection,
    claim: Claim,
    outcome: Outcome,
    *,
    schedule: Sequence[float],
    disable_after: int,
) -> AttemptStatus:
    """Log the attempt and move its delivery on, in the caller's transaction (bound to the
    tenant): `succeeded` on a 2xx (the endpoint's run of failures ends); else `pending`
    with the next retry due, or `failed` when the schedule is spent. A failed delivery adds
    to the endpoint's run of failures; the run reaching `disable_after` disables the
    endpoint and records a `WebhookEndpointDisabled` event. `superseded` when the attempt's
    lease had expired and another attempt took the delivery over (only the log is kept)."""
    error = None if outcome.error is None else outcome.error[:MAX_ERROR_LENGTH]
    await repository.insert_attempt(
        db,
        tenant_id=claim.tenant_id,
        delivery_id=claim.delivery_id,
        attempt=claim.attempt,
        started_at=outcome.started_at,
        status_code=outcome.status_code,
        latency_seconds=outcome.latency_seconds,
        error=error,
    )
    status: AttemptStatus
    delay: float | None = None
    if outcome.succeeded:
        status = "succeeded"
    else:
        delay = retry_delay(schedule, claim.scheduled_attempt)
        status = "failed" if delay is None else "pending"
    finished = await repository.finish_attempt(
        db,
        tenant_id=claim.tenant_id,
        delivery_id=claim.delivery_id,
        lease=claim.lease,
        status=status,
        retry_in_seconds=delay,
        status_code=outcome.status_code,
        error=error,
    )
    if not finished:
        return "superseded"
    if status == "succeeded":
        await repository.reset_failures(
            db, tenant_id=claim.tenant_id, endpoint_id=claim.endpoint_id
        )
    elif status == "failed":
        endpoint = await repository.count_failure(
            db,
            tenant_id=claim.tenant_id,
            endpoint_id=claim.endpoint_id,
            disable_after=disable_after,
        )
        if endpoint is not None and endpoint["just_disabled"]:
            await event_service.record(
                db,
                tenant_id=claim.tenant_id,
                type=EventType.WEBHOOK_ENDPOINT_DISABLED,
                subject=f"webhooks/{endpoint['id']}",
                data={
                    "webhook_id": str(endpoint["id"]),
                    "url": endpoint["url"],
                    "consecutive_failures": endpoint["consecutive_failures"],
                    "disabled_at": endpoint["disabled_at"].isoformat(),
                },
            )
    return status
