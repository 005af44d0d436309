"""`/api/v1/{tenantId}/webhooks`: webhook endpoints, their deliveries, and redelivery.

Webhooks are tenant configuration: admins only. A forbidden target URL (not public, or
resolving to an address that is not) is a 422 on `url`, checked here and again before every
delivery (docs/webhooks.md).
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response

from shelfkeeper.auth.dependencies import TENANT_SCOPED_PROBLEMS, Administrator, TenantSession
from shelfkeeper.config import Settings
from shelfkeeper.event import webhook_service as service
from shelfkeeper.event.webhook_schemas import (
    DeliveryStatus,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookDelivery,
    WebhookUpdate,
)
from shelfkeeper.kit import outbound
from shelfkeeper.kit.conditional import check_not_modified, expected_version, set_etag
from shelfkeeper.kit.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReuse
from shelfkeeper.kit.pagination import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from shelfkeeper.kit.problems import VersionMismatch, problem_responses
from shelfkeeper.kit.routing import TransactionalRoute

router = APIRouter(
    prefix="/{tenant_id}/webhooks",
    tags=["Webhooks"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)

IfMatch = Annotated[str | None, Header(description='Current ETag (`"<version>"`); stale → 412.')]
WRITE_PROBLEMS = (IdempotencyKeyInFlight, IdempotencyKeyReuse)


def _allow_private(request: Request) -> bool:
    settings: Settings = request.app.state.settings
    return settings.webhook_allow_private_networks


@router.post(
    "",
    status_code=201,
    summary="Create a webhook",
    description="Subscribes `url` to the listed event types. The response carries the "
    "signing `secret` (`whsec_...`), shown only this once.",
    responses=problem_responses(*WRITE_PROBLEMS),
)
async def create_webhook(
    body: WebhookCreate,
    principal: Administrator,
    db: TenantSession,
    request: Request,
    response: Response,
) -> WebhookCreated:
    webhook = await service.create(
        db,
        principal,
        body=body,
        allow_private=_allow_private(request),
        resolver=outbound.system_resolver,
    )
    set_etag(response, webhook.version)
    response.headers["Location"] = f"/api/v1/{principal.tenant_id}/webhooks/{webhook.id}"
    return webhook


@router.get("", summary="List webhooks")
async def list_webhooks(
    principal: Administrator,
    db: TenantSession,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[
        str, Query(description="`created_at` or `updated_at`; `-` descends.")
    ] = "created_at",
    enabled: bool | None = None,
) -> Page[Webhook]:
    return await service.list_webhooks(
        db, principal, sort=sort, cursor=cursor, limit=limit, enabled=enabled
    )


@router.get(
    "/{webhook_id}",
    summary="Read a webhook",
    responses={304: {"description": "Not modified"}, **problem_responses(service.WebhookNotFound)},
)
async def get_webhook(
    webhook_id: UUID,
    principal: Administrator,
    db: TenantSession,
    response: Response,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Webhook:
    webhook = await service.get(db, principal, webhook_id=webhook_id)
    check_not_modified(if_none_match, webhook.version)
    set_etag(response, webhook.version)
    return webhook


@router.patch(
    "/{webhook_id}",
    summary="Update a webhook",
    description='`{"enabled": true}` re-enables an endpoint disabled after failing.',
    responses=problem_responses(service.WebhookNotFound, VersionMismatch, *WRITE_PROBLEMS),
)
async def update_webhook(
    webhook_id: UUID,
    body: WebhookUpdate,
    principal: Administrator,
    db: TenantSession,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> Webhook:
    webhook = await service.update(
        db,
        principal,
        webhook_id=webhook_id,
        body=body,
        expected_version=expected_version(if_match),
        allow_private=_allow_private(request),
        resolver=outbound.system_resolver,
    )
    set_etag(response, webhook.version)
    return webhook


@router.delete(
    "/{webhook_id}",
    status_code=204,
    summary="Delete a webhook",
    description="Its deliveries and their attempts go with it.",
    responses=problem_responses(service.WebhookNotFound, VersionMismatch),
)
async def delete_webhook(
    webhook_id: UUID, principal: Administrator, db: TenantSession, if_match: IfMatch = None
) -> None:
    await service.delete(
        db, principal, webhook_id=webhook_id, expected_version=expected_version(if_match)
    )


@router.get(
    "/{webhook_id}/deliveries",
    summary="List a webhook's deliveries",
    description="Newest first by default, each with its attempts (number, status code, "
    "latency, error).",
    responses=problem_responses(service.WebhookNotFound),
)
async def list_deliveries(
    webhook_id: UUID,
    principal: Administrator,
    db: TenantSession,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[str, Query(description="`created_at`; `-` descends.")] = "-created_at",
    status: DeliveryStatus | None = None,
) -> Page[WebhookDelivery]:
    return await service.list_deliveries(
        db,
        principal,
        webhook_id=webhook_id,
        sort=sort,
        cursor=cursor,
        limit=limit,
        status=status,
    )


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}",
    summary="Read a delivery",
    responses=problem_responses(service.DeliveryNotFound),
)
async def get_delivery(
    webhook_id: UUID, delivery_id: UUID, principal: Administrator, db: TenantSession
) -> WebhookDelivery:
    return await service.get_delivery(db, principal, webhook_id=webhook_id, delivery_id=delivery_id)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    status_code=202,
    summary="Redeliver",
    description="Makes the delivery pending and due now, with a fresh retry schedule; the "
    "receiver gets the same `webhook-id` again. 409 while an attempt is under way.",
    responses=problem_responses(
        service.DeliveryNotFound, service.DeliveryInFlight, *WRITE_PROBLEMS
    ),
)
async def redeliver(
    webhook_id: UUID, delivery_id: UUID, principal: Administrator, db: TenantSession
) -> WebhookDelivery:
    return await service.redeliver(db, principal, webhook_id=webhook_id, delivery_id=delivery_id)
