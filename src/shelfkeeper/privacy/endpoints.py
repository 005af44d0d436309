"""`/api/v1/{tenantId}/privacy`: a customer's data, exported or erased (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from shelfkeeper.auth.dependencies import TENANT_SCOPED_PROBLEMS, Administrator, TenantSession
from shelfkeeper.kit.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReuse
from shelfkeeper.kit.problems import problem_responses
from shelfkeeper.kit.routing import TransactionalRoute
from shelfkeeper.order.schemas import Email
from shelfkeeper.privacy import subject_service
from shelfkeeper.privacy.schemas import CustomerExport, Erasure, ErasureCreate

router = APIRouter(
    prefix="/{tenant_id}/privacy",
    tags=["Privacy"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)


@router.get(
    "/export",
    summary="Export everything held about a customer",
    description="The customer's orders (customer data, shipping address, lines, payments, "
    "refunds) and their returns, found by email (case and surrounding space ignored). An "
    "unknown email gives empty lists. Admins only.",
)
async def export_customer(
    request: Request,
    principal: Administrator,
    db: TenantSession,
    email: Annotated[Email, Query(description="The customer's email.")],
) -> CustomerExport:
    return await subject_service.export(
        db, principal, email=email, settings=request.app.state.settings
    )


@router.post(
    "/erasure",
    summary="Erase a customer's personal data",
    description="Pseudonymises the customer on every order (`erased-...@erased.invalid`; "
    "name, phone and shipping address dropped; orders keep their numbers, lines and totals) "
    "and erases stored idempotent responses that held the customer's data. The email no "
    "longer finds the orders. Repeating it erases nothing more. Admins only.",
    responses=problem_responses(IdempotencyKeyInFlight, IdempotencyKeyReuse),
)
async def erase_customer(
    request: Request, body: ErasureCreate, principal: Administrator, db: TenantSession
) -> Erasure:
    return await subject_service.erase(
        db, principal, email=body.email, settings=request.app.state.settings
    )
