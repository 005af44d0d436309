"""`/api/v1/{tenantId}/orders`: placing, reading, moving and changing orders, payments,
returns, refunds and exchanges.

Viewers read; clerks (and admins) place orders, move them through their lifecycle, change
their lines and record payments.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from shelfkeeper.audit import service as audit_service
from shelfkeeper.auth.dependencies import TENANT_SCOPED_PROBLEMS, Operator, Reader, TenantSession
from shelfkeeper.inventory.errors import (
    InsufficientReserved,
    InsufficientStock,
    ReservationNotHeld,
)
from shelfkeeper.kit.conditional import check_not_modified, expected_version, set_etag
from shelfkeeper.kit.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReuse
from shelfkeeper.kit.pagination import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from shelfkeeper.kit.problems import VersionMismatch, problem_responses
from shelfkeeper.kit.routing import TransactionalRoute
from shelfkeeper.kit.schemas import Moment
from shelfkeeper.order import blind_index, service
from shelfkeeper.order.errors import (
    OrderEmpty,
    OrderLineNotFound,
    OrderLocked,
    OrderNotFound,
    OrderNotShipped,
    PaymentExceedsTotal,
    RefundExceedsPaid,
    ReservationMismatch,
    ReturnClosed,
    ReturnExceedsShipped,
    ReturnNotFound,
    TotalBelowPaid,
)
from shelfkeeper.order.lifecycle import InvalidTransition, OrderStatus
from shelfkeeper.order.schemas import (
    Exchange,
    ExchangeCreate,
    Order,
    OrderCreate,
    OrderLineCreate,
    OrderLineUpdate,
    OrderUpdate,
    PaymentCreate,
    RefundCreate,
    Return,
    ReturnCreate,
    ReturnUpdate,
)

router = APIRouter(
    prefix="/{tenant_id}/orders",
    tags=["Orders"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)

IfMatch = Annotated[str | None, Header(description='Current ETag (`"<version>"`); stale → 412.')]
IfNoneMatch = Annotated[str | None, Header()]
WRITE_PROBLEMS = (IdempotencyKeyInFlight, IdempotencyKeyReuse)


async def _blind_index(request: Request) -> blind_index.BlindIndex:
    # Cached per master key: only the first call reads (or creates) the key file.
    return blind_index.for_settings(request.app.state.settings)


BlindIndex = Annotated[blind_index.BlindIndex, Depends(_blind_index)]


def _located(response: Response, principal_tenant: str | None, order: Order) -> Order:
    set_etag(response, order.version)
    response.headers["Location"] = f"/api/v1/{principal_tenant}/orders/{order.id}"
    return order


@router.post(
    "",
    status_code=201,
    summary="Place an order",
    description="Reserves stock for every line, or for none. A line with `location_id` is "
    "reserved there; otherwise the server picks one active location that can fill it "
    "(highest `priority`, then most available), else splits it across locations in that "
    "order. Short → 409 `insufficient-stock` whose `lines` list every short line (`index`, "
    "`variant_id`, `sku`, `location_id` if named, `requested`, `available`); nothing is "
    "reserved then. With `reservation_id` the order takes a held reservation's units over "
    "(409 `reservation-not-held`, `reservation-mismatch`). `unit_price` defaults to the "
    "variant's price; prices may not have more decimals than the currency (422). The total "
    "is computed by the server.",
    responses=problem_responses(
        InsufficientStock, ReservationNotHeld, ReservationMismatch, *WRITE_PROBLEMS
    ),
)
async def create_order(
    body: OrderCreate,
    principal: Operator,
    db: TenantSession,
    request: Request,
    response: Response,
    index: BlindIndex,
) -> Order:
    # The service writes the request's audit entry itself, before it takes the order's
    # number: the tenant's orders queue on that number from then to the commit.
    placed_by = service.PlacedBy(
        origin=audit_service.Origin.of(
            principal,
            request_id=getattr(request.state, "request_id", None),
            client=request.client.host if request.client is not None else None,
        ),
        action=request.scope["route"].name,
    )
    order = await service.create(db, principal, body=body, blind_index=index, audit=placed_by)
    return _located(response, principal.tenant_id, order)


@router.get("", summary="List orders")
async def list_orders(
    principal: Reader,
    db: TenantSession,
    index: BlindIndex,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[
        str, Query(description="`created_at`, `updated_at` or `total`; `-` descends.")
    ] = "created_at",
    status: OrderStatus | None = None,
    created_after: Annotated[
        Moment | None, Query(description="Placed at or after (RFC 3339).")
    ] = None,
    created_before: Annotated[Moment | None, Query(description="Placed before (RFC 3339).")] = None,
    customer_email: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=254,
            description="The customer's email (case and surrounding space ignored).",
        ),
    ] = None,
) -> Page[Order]:
    return await service.list_orders(
        db,
        principal,
        sort=sort,
        cursor=cursor,
        limit=limit,
        blind_index=index,
        status=status,
        created_after=created_after,
        created_before=created_before,
        customer_email=customer_email,
    )


@router.get(
    "/{order_id}",
    summary="Read an order with its lines, allocations, payments and history",
    responses={304: {"description": "Not modified"}, **problem_responses(OrderNotFound)},
)
async def get_order(
    order_id: UUID,
    principal: Reader,
    db: TenantSession,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> Order:
    order = await service.get(db, principal, order_id=order_id)
    # Everything the body shows changes only with a new version of the order.
    check_not_modified(if_none_match, order.version)
    set_etag(response, order.version)
    return order


@router.patch(
    "/{order_id}",
    summary="Move an order to its next status, or change its details",
    description="`status`: pending → processed → shipped → delivered, and canceled from "
    "pending or processed; anything else → 409 `invalid-transition` with the `allowed` "
    "statuses. Shipping turns the order's reservations into deductions (ledger `release` + "
    "`subtract`, reason `sale`); cancelling releases them. `shipment` (carrier, tracking "
    "number) goes with shipping. `notes`, `metadata`, `shipping_address` change while the "
    "order is pending or processed (else 409 `order-locked`).",
    responses=problem_responses(
        OrderNotFound,
        VersionMismatch,
        InvalidTransition,
        OrderLocked,
        InsufficientReserved,
        InsufficientStock,
        *WRITE_PROBLEMS,
    ),
)
async def update_order(
    order_id: UUID,
    body: OrderUpdate,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Order:
    order = await service.update(
        db, principal, order_id=order_id, body=body, expected_version=expected_version(if_match)
    )
    set_etag(response, order.version)
    return order


@router.post(
    "/{order_id}/items",
    status_code=201,
    summary="Add a line",
    description="Reserves the line's units like any order line's, and recomputes the total. "
    "Answers with the whole order. Only while pending or processed (else 409 "
    "`order-locked`).",
    responses=problem_responses(
        OrderNotFound, VersionMismatch, OrderLocked, InsufficientStock, *WRITE_PROBLEMS
    ),
)
async def add_line(
    order_id: UUID,
    body: OrderLineCreate,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Order:
    order = await service.add_line(
        db, principal, order_id=order_id, body=body, expected_version=expected_version(if_match)
    )
    return _located(response, principal.tenant_id, order)


@router.patch(
    "/{order_id}/items/{line_id}",
    summary="Change a line's quantity or unit price",
    description="More units are reserved (placed like a new line's), fewer are released "
    "(the last-placed first); the total is recomputed. Only while pending or processed. A "
    "total below what was paid → 409 `total-below-paid`.",
    responses=problem_responses(
        OrderNotFound,
        OrderLineNotFound,
        VersionMismatch,
        OrderLocked,
        InsufficientStock,
        TotalBelowPaid,
        *WRITE_PROBLEMS,
    ),
)
async def update_line(
    order_id: UUID,
    line_id: UUID,
    body: OrderLineUpdate,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Order:
    order = await service.update_line(
        db,
        principal,
        order_id=order_id,
        line_id=line_id,
        body=body,
        expected_version=expected_version(if_match),
    )
    set_etag(response, order.version)
    return order


@router.delete(
    "/{order_id}/items/{line_id}",
    status_code=204,
    summary="Remove a line",
    description="`line_id` is the order line's `id`. Releases its units. The last line → 409 "
    "`order-empty` (cancel the order instead); not pending or processed → 409 "
    "`order-locked`.",
    responses=problem_responses(
        OrderNotFound, OrderLineNotFound, VersionMismatch, OrderLocked, OrderEmpty, TotalBelowPaid
    ),
)
async def remove_line(
    order_id: UUID,
    line_id: UUID,
    principal: Operator,
    db: TenantSession,
    if_match: IfMatch = None,
) -> None:
    await service.remove_line(
        db,
        principal,
        order_id=order_id,
        line_id=line_id,
        expected_version=expected_version(if_match),
    )


@router.post(
    "/{order_id}/payments",
    status_code=201,
    summary="Record a payment",
    description="Records a captured payment through the provider (`manual`: money taken "
    "outside Shelfkeeper) and answers with the order: `payment_status` goes unpaid → "
    "partially_paid → paid. More than the order still owes → 409 `payment-exceeds-total` "
    "(with `due`). An unknown provider → 422. A canceled order → 409 `order-locked`.",
    responses=problem_responses(
        OrderNotFound, VersionMismatch, OrderLocked, PaymentExceedsTotal, *WRITE_PROBLEMS
    ),
)
async def record_payment(
    order_id: UUID,
    body: PaymentCreate,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Order:
    order = await service.record_payment(
        db, principal, order_id=order_id, body=body, expected_version=expected_version(if_match)
    )
    return _located(response, principal.tenant_id, order)


@router.post(
    "/{order_id}/returns",
    status_code=201,
    summary="Request a return",
    description="Only for a shipped or delivered order (else 409 `order-not-shipped`). Each "
    "line takes back at most what was shipped of it minus what other returns (requested or "
    "received) take back (else 409 `return-exceeds-shipped`). Status `requested`; records "
    "`ReturnRequested`.",
    responses=problem_responses(
        OrderNotFound, OrderNotShipped, ReturnExceedsShipped, *WRITE_PROBLEMS
    ),
)
async def create_return(
    order_id: UUID,
    body: ReturnCreate,
    principal: Operator,
    db: TenantSession,
    response: Response,
) -> Return:
    returned = await service.create_return(db, principal, order_id=order_id, body=body)
    set_etag(response, returned.version)
    response.headers["Location"] = (
        f"/api/v1/{principal.tenant_id}/orders/{order_id}/returns/{returned.id}"
    )
    return returned


@router.get(
    "/{order_id}/returns",
    summary="List an order's returns",
    responses=problem_responses(OrderNotFound),
)
async def list_returns(order_id: UUID, principal: Reader, db: TenantSession) -> Page[Return]:
    returns = await service.list_returns(db, principal, order_id=order_id)
    return Page[Return](data=returns, next_cursor=None)


@router.get(
    "/{order_id}/returns/{return_id}",
    summary="Read a return",
    responses=problem_responses(ReturnNotFound),
)
async def get_return(
    order_id: UUID, return_id: UUID, principal: Reader, db: TenantSession, response: Response
) -> Return:
    returned = await service.get_return(db, principal, order_id=order_id, return_id=return_id)
    set_etag(response, returned.version)
    return returned


@router.patch(
    "/{order_id}/returns/{return_id}",
    summary="Receive or reject a return",
    description="`received`: lines with `restock` go back on hand at the line's locations "
    "(ledger `add`, reason `returned`, reference `return:<id>`), `ReturnReceived` is "
    "recorded. `rejected`: its units count as not returned. Only once (else 409 "
    "`return-closed`).",
    responses=problem_responses(
        OrderNotFound, ReturnNotFound, VersionMismatch, ReturnClosed, *WRITE_PROBLEMS
    ),
)
async def update_return(
    order_id: UUID,
    return_id: UUID,
    body: ReturnUpdate,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Return:
    returned = await service.update_return(
        db,
        principal,
        order_id=order_id,
        return_id=return_id,
        body=body,
        expected_version=expected_version(if_match),
    )
    set_etag(response, returned.version)
    return returned


@router.post(
    "/{order_id}/refunds",
    status_code=201,
    summary="Refund money",
    description="Through the payment provider (`manual`: given back by hand). At most what "
    "was paid minus what was refunded (else 409 `refund-exceeds-paid`, with `refundable`). "
    "`payment_status` becomes `partially_refunded` or `refunded`; records `RefundIssued`. "
    "Answers with the order (its `refunds`, `amount_refunded`).",
    responses=problem_responses(OrderNotFound, VersionMismatch, RefundExceedsPaid, *WRITE_PROBLEMS),
)
async def refund(
    order_id: UUID,
    body: RefundCreate,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Order:
    order = await service.refund(
        db, principal, order_id=order_id, body=body, expected_version=expected_version(if_match)
    )
    return _located(response, principal.tenant_id, order)


@router.post(
    "/{order_id}/exchanges",
    status_code=201,
    summary="Exchange units for others",
    description="Creates a return of `return_lines` and a new pending order of `new_lines` "
    "(same customer, currency and address; `exchange_of` names this order) whose lines are "
    "reserved like any order's: if they cannot be, nothing is created (409 "
    "`insufficient-stock`). `price_difference` is the new total minus the returned value.",
    responses=problem_responses(
        OrderNotFound,
        OrderNotShipped,
        ReturnExceedsShipped,
        InsufficientStock,
        *WRITE_PROBLEMS,
    ),
)
async def exchange(
    order_id: UUID,
    body: ExchangeCreate,
    principal: Operator,
    db: TenantSession,
    index: BlindIndex,
) -> Exchange:
    return await service.exchange(db, principal, order_id=order_id, body=body, blind_index=index)
