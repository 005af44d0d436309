"""`/api/v1/{tenantId}/integrations/{provider}`: callback secrets and signed callbacks.

The callback is not authenticated by a bearer token but by its Standard Webhooks signature
under the tenant's secret for that provider; it runs in a transaction bound to the path's
tenant (row-level security stays on), as `system`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request

from shelfkeeper.audit import service as audit_service
from shelfkeeper.auth.dependencies import TENANT_SCOPED_PROBLEMS, Administrator, TenantSession
from shelfkeeper.db.database import Database
from shelfkeeper.inventory.errors import InsufficientStock
from shelfkeeper.kit.problems import problem_responses
from shelfkeeper.kit.routing import TransactionalRoute
from shelfkeeper.order import service
from shelfkeeper.order.errors import (
    InvalidSignature,
    OrderNotFound,
    PaymentExceedsTotal,
    ProviderNotFound,
)
from shelfkeeper.order.lifecycle import InvalidTransition
from shelfkeeper.order.schemas import CallbackResult, CallbackSecret
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TENANT_ID_PATTERN

router = APIRouter(
    prefix="/{tenant_id}/integrations",
    tags=["Integrations"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)
callback_router = APIRouter(prefix="/{tenant_id}/integrations", tags=["Integrations"])

ProviderName = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,39}$", examples=["manual"])]


@router.post(
    "/{provider}/secret",
    status_code=201,
    summary="Create or rotate a provider's callback secret",
    description="Answers with the secret once (`whsec_...`); the previous one stops "
    "working at once. Admins only.",
    responses=problem_responses(ProviderNotFound),
)
async def rotate_secret(
    provider: ProviderName, principal: Administrator, db: TenantSession
) -> CallbackSecret:
    return await service.rotate_secret(db, principal, provider=provider)


@callback_router.post(
    "/{provider}/callback",
    openapi_extra={"security": []},
    summary="A provider's signed callback",
    description="Signed per Standard Webhooks (`webhook-id`, `webhook-timestamp`, "
    '`webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`) with the '
    "tenant's secret for the provider; a timestamp more than five minutes away is refused. "
    "Bad or missing signature → 401, nothing changes. A `webhook-id` handled before → 200 "
    '`"outcome": "duplicate"` without a second effect. Payloads: `{"type": '
    '"payment.captured", "order_id", "amount", "reference"?}` records a payment; '
    '`{"type": "shipment.delivered", "order_id"}` delivers a shipped order.',
    responses=problem_responses(
        InvalidSignature,
        ProviderNotFound,
        OrderNotFound,
        PaymentExceedsTotal,
        InvalidTransition,
        InsufficientStock,
    ),
)
async def callback(
    tenant_id: Annotated[str, Path(pattern=TENANT_ID_PATTERN)],
    provider: ProviderName,
    request: Request,
) -> CallbackResult:
    body = await request.body()
    if not service.known_provider(provider):
        raise ProviderNotFound(f"No provider `{provider}`.")
    database: Database = request.app.state.database
    # The signature is the credential; the transaction is bound to the path's tenant. What
    # the callback changes is audited as `system`, with the request's id and client.
    origin = audit_service.Origin(
        actor="system",
        role=None,
        request_id=getattr(request.state, "request_id", None),
        client_address=request.client.host if request.client is not None else None,
    )
    async with audit_service.audited_transaction(database, tenant_id, origin=origin) as db:
        try:
            await tenant_service.enter(db, tenant_id)
        except tenant_service.TenantNotFound as error:
            raise InvalidSignature("No callback secret is set for this provider.") from error
        return await service.handle_callback(
            db, tenant_id=tenant_id, provider=provider, headers=request.headers, body=body
        )
