"""Order rules: placing orders (stock reserved all or nothing), the lifecycle, line
changes, payments, and the list.

Every change to an existing order locks its row first (`repository.lock`), then changes
stock levels through the inventory service in the global lock order (variant id, location
id), so concurrent changes never deadlock. Placing an order locks no order row: it
reserves its stock, writes its rows, and takes its number from the tenant's counter in its
last statement. Each change records its event in the same transaction (the outbox).

The customer and the shipping address are personal data: they are stored sealed under the
tenant's data key (`privacy.service`) and opened when an order is read. Events carry no
personal data: their `data` is the order without `customer` and `shipping_address`
(consumers that need them read the order), so the outbox, webhook deliveries and the
broker never hold them.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from shelfkeeper.audit import service as audit_service
from shelfkeeper.auth.principal import Principal
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Record
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import EventType
from shelfkeeper.inventory import reservation_service
from shelfkeeper.inventory import service as inventory_service
from shelfkeeper.inventory.allocation import Candidate, Demand, Plan, allocate
from shelfkeeper.inventory.errors import InsufficientStock, ReservationNotFound
from shelfkeeper.kit import money, recording
from shelfkeeper.kit.pagination import TIMESTAMP_FIELD, Page, SortField, keyset, page_of
from shelfkeeper.kit.problems import ValidationFailed, VersionMismatch
from shelfkeeper.location import service as location_service
from shelfkeeper.order import blind_index as blind_indexes
from shelfkeeper.order import lifecycle, providers, repository, signature
from shelfkeeper.order.blind_index import BlindIndex
from shelfkeeper.order.errors import (
    InvalidSignature,
    OrderEmpty,
    OrderLineNotFound,
    OrderLocked,
    OrderNotFound,
    OrderNotShipped,
    PaymentExceedsTotal,
    ProviderNotFound,
    RefundExceedsPaid,
    ReservationMismatch,
    ReturnClosed,
    ReturnExceedsShipped,
    ReturnNotFound,
    TotalBelowPaid,
)
from shelfkeeper.order.lifecycle import OrderStatus, StockEffect
from shelfkeeper.order.schemas import (
    Allocation,
    CallbackPayload,
    CallbackResult,
    CallbackSecret,
    Customer,
    Exchange,
    ExchangeCreate,
    Order,
    OrderCreate,
    OrderLine,
    OrderLineCreate,
    OrderLineUpdate,
    OrderUpdate,
    Payment,
    PaymentCaptured,
    PaymentCreate,
    PaymentStatus,
    Refund,
    RefundCreate,
    Return,
    ReturnCreate,
    ReturnLine,
    ReturnLineCreate,
    ReturnStatus,
    ReturnUpdate,
    Shipment,
    ShipmentDelivered,
    ShippingAddress,
    StatusChange,
)
from shelfkeeper.privacy import service as privacy_service


def _parse_amount(value: Any) -> Decimal:
    if not isinstance(value, str):
        raise ValueError("not an amount")
    try:
        amount = Decimal(value)
    except ArithmeticError as error:
        raise ValueError("not an amount") from error
    if not amount.is_finite():
        raise ValueError("not an amount")
    return amount


SORT_FIELDS = {
    "created_at": SortField("created_at", TIMESTAMP_FIELD),
    "updated_at": SortField("updated_at", TIMESTAMP_FIELD),
    "total": SortField("total", _parse_amount),
}
Location = list[str | int]


def _tenant(principal: Principal) -> str:
    assert principal.tenant_id is not None
    return principal.tenant_id


def reference_of(order_id: UUID) -> str:
    """The `reference` of every stock movement an order causes."""
    return f"order:{order_id}"


def _invalid(location: Location, message: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": location, "msg": message, "type": kind}


def payment_status(total: Decimal, paid: Decimal, refunded: Decimal = Decimal(0)) -> PaymentStatus:
    """`paid` once nothing is owed (an order whose total is 0 owes nothing); once anything
    was refunded, `refunded` when all that was paid went back, else `partially_refunded`."""
    if refunded > 0:
        return PaymentStatus.REFUNDED if refunded >= paid else PaymentStatus.PARTIALLY_REFUNDED
    if paid >= total:
        return PaymentStatus.PAID
    if paid > 0:
        return PaymentStatus.PARTIALLY_PAID
    return PaymentStatus.UNPAID


# --- reading ---------------------------------------------------------------------------


def _utc(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC)


CUSTOMER_FIELD = "sales_order.customer"
ADDRESS_FIELD = "sales_order.shipping_address"
SECRET_FIELD = "integration_secret.secret"
PERSONAL_FIELDS = frozenset({"customer", "shipping_address"})
"""The order's fields that hold personal data (sealed at rest, left out of events)."""


def email_index(settings: Settings) -> BlindIndex:
    """The blind index of customer emails for these settings' master key."""
    return blind_indexes.for_settings(settings)


def _sealed_personal_data(
    sealer: privacy_service.Sealer, *, customer: Customer, shipping_address: ShippingAddress | None
) -> tuple[bytes, bytes | None]:
    return (
        sealer.seal_json(CUSTOMER_FIELD, customer.model_dump(exclude_none=True)),
        sealer.seal_json(ADDRESS_FIELD, shipping_address.model_dump(exclude_none=True))
        if shipping_address is not None
        else None,
    )


async def _read(db: Connection, tenant_id: str, row: Record, *, number: int | None = None) -> Order:
    """The order of a row, its personal data opened."""
    address: bytes | None = row["shipping_address"]
    return _order(
        row,
        customer=Customer.model_validate(
            await privacy_service.open_json(
                db, tenant_id=tenant_id, field=CUSTOMER_FIELD, sealed=row["customer"]
            )
        ),
        shipping_address=ShippingAddress.model_validate(
            await privacy_service.open_json(
                db, tenant_id=tenant_id, field=ADDRESS_FIELD, sealed=address
            )
        )
        if address is not None
        else None,
        number=number,
    )


def _order(
    row: Record,
    *,
    customer: Customer,
    shipping_address: ShippingAddress | None,
    number: int | None = None,
) -> Order:
    currency: str = row["currency"]

    def amount(value: Decimal | str) -> Decimal:
        return money.in_currency(Decimal(value), currency)

    shipment = row["shipment"]
    return Order(
        id=row["id"],
        number=number if number is not None else row["number"],
        status=OrderStatus(row["status"]),
        payment_status=PaymentStatus(row["payment_status"]),
        customer=customer,
        shipping_address=shipping_address,
        currency=currency,
        lines=[
            OrderLine(
                id=line["id"],
                item_id=line["item_id"],
                variant_id=line["variant_id"],
                sku=line["sku"],
                quantity=line["quantity"],
                unit_price=amount(line["unit_price"]),
                total=amount(Decimal(line["unit_price"]) * line["quantity"]),
                location_id=line["location_id"],
                allocations=[Allocation.model_validate(piece) for piece in line["allocations"]],
            )
            for line in row["lines"]
        ],
        total=amount(row["total"]),
        amount_paid=amount(row["amount_paid"]),
        payments=[
            Payment(
                id=payment["id"],
                amount=amount(payment["amount"]),
                provider=payment["provider"],
                reference=payment["reference"],
                status=payment["status"],
                created_by=payment["created_by"],
                created_at=_utc(payment["created_at"]),
            )
            for payment in row["payments"]
        ],
        shipment=(
            Shipment(
                carrier=shipment["carrier"],
                tracking_number=shipment["tracking_number"],
                provider=shipment["provider"],
                recorded_at=_utc(shipment["recorded_at"]),
            )
            if shipment is not None
            else None
        ),
        status_history=[
            StatusChange(
                status=OrderStatus(change["status"]), at=_utc(change["at"]), actor=change["actor"]
            )
            for change in row["status_history"]
        ],
        notes=row["notes"],
        metadata=row["metadata"],
        reservation_id=row["reservation_id"],
        amount_refunded=amount(row["amount_refunded"]),
        refunds=[
            Refund(
                id=refund["id"],
                amount=amount(refund["amount"]),
                reason=refund["reason"],
                return_id=refund["return_id"],
                provider=refund["provider"],
                reference=refund["reference"],
                created_by=refund["created_by"],
                created_at=_utc(refund["created_at"]),
            )
            for refund in row["refunds"]
        ],
        exchange_of=row["exchange_of"],
        version=row["version"],
        created_by=row["created_by"],
        updated_by=row["updated_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def get(db: Connection, principal: Principal, *, order_id: UUID) -> Order:
    """Raises OrderNotFound (404), also for another tenant's order."""
    tenant_id = _tenant(principal)
    row = await repository.get(db, tenant_id=tenant_id, order_id=order_id)
    if row is None:
        raise OrderNotFound()
    return await _read(db, tenant_id, row)


async def list_orders(
    db: Connection,
    principal: Principal,
    *,
    sort: str,
    cursor: str | None,
    limit: int,
    blind_index: BlindIndex,
    status: OrderStatus | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    customer_email: str | None = None,
) -> Page[Order]:
    """A page of orders. `customer_email` is matched through its blind index (normalised:
    surrounding space removed, case ignored), never against the stored email."""
    tenant_id = _tenant(principal)
    page = keyset(sort=sort, fields=SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=6)
    rows = await repository.list_page(
        db,
        tenant_id=tenant_id,
        keyset=page,
        filters=repository.OrderFilter(
            status=status.value if status is not None else None,
            created_after=created_after,
            created_before=created_before,
            customer_email_index=(
                blind_index.email(tenant_id, customer_email) if customer_email is not None else None
            ),
        ),
    )
    sort_name = sort.removeprefix("-")

    def sort_value(order: Order) -> Any:
        value = getattr(order, sort_name)
        return str(value) if isinstance(value, Decimal) else value

    return page_of(
        [await _read(db, tenant_id, row) for row in rows],
        limit=limit,
        sort=sort,
        sort_value=sort_value,
        row_id=lambda order: order.id,
    )


# --- a customer's data (privacy requests) -----------------------------------------------

ERASED_EMAIL_DOMAIN = "erased.invalid"


async def customer_orders(
    db: Connection, principal: Principal, *, email: str, blind_index: BlindIndex
) -> list[Order]:
    """Every order of the customer with `email` (matched through the blind index: surrounding
    space removed, case ignored), oldest first."""
    tenant_id = _tenant(principal)
    order_ids = await repository.ids_by_email_index(
        db, tenant_id=tenant_id, email_index=blind_index.email(tenant_id, email)
    )
    return [await get(db, principal, order_id=order_id) for order_id in order_ids]


async def erase_customer(
    db: Connection, principal: Principal, *, email: str, blind_index: BlindIndex
) -> list[Order]:
    """Pseudonymise the orders of the customer with `email`: their customer becomes
    `erased-<random>@erased.invalid` (one pseudonym for this request, derived from nothing),
    its name, phone and the shipping address are dropped, and the email index follows the
    pseudonym, so the email finds nothing any more. Numbers, lines, totals, payments,
    refunds and returns stay. Each order gets a new version and an `OrderUpdated` event.
    Returns the orders as they are now, oldest first (none: no such customer)."""
    tenant_id = _tenant(principal)
    order_ids = await repository.ids_by_email_index(
        db, tenant_id=tenant_id, email_index=blind_index.email(tenant_id, email)
    )
    if not order_ids:
        return []
    for order_id in sorted(order_ids):
        await _lock(db, principal, order_id=order_id, expected_version=None)
    pseudonym = Customer(email=f"erased-{secrets.token_hex(8)}@{ERASED_EMAIL_DOMAIN}")
    sealer = await privacy_service.sealer(db, tenant_id=tenant_id)
    await repository.erase_customer(
        db,
        tenant_id=tenant_id,
        order_ids=order_ids,
        customer=sealer.seal_json(CUSTOMER_FIELD, pseudonym.model_dump(exclude_none=True)),
        customer_email_index=blind_index.email(tenant_id, pseudonym.email),
        actor=principal.actor,
    )
    erased: list[Order] = []
    for order_id in order_ids:
        order = await get(db, principal, order_id=order_id)
        await _record(db, tenant_id=tenant_id, type=EventType.ORDER_UPDATED, order=order)
        erased.append(order)
    return erased


# --- lines: resolving, pricing, reserving ------------------------------------------------


Pieces = dict[UUID, tuple[int, int]]
"""A line's allocations: location → (position, quantity)."""


@dataclass(frozen=True)
class _Line:
    """A requested line, resolved and priced."""

    variant: inventory_service.SellableVariant
    quantity: int
    unit_price: Decimal
    location_id: UUID | None

    @property
    def total(self) -> Decimal:
        return self.unit_price * self.quantity


def _decimals(currency: str) -> str:
    digits = money.MINOR_UNITS[currency]
    return f"{currency} amounts have {'no' if digits == 0 else f'at most {digits}'} decimals."


async def _resolve(
    db: Connection,
    principal: Principal,
    *,
    lines: Sequence[OrderLineCreate],
    where: Sequence[Location],
    currency: str,
    places: dict[UUID, tuple[int, bool]],
) -> list[_Line]:
    """The requested lines with their variants and unit prices.

    Raises ValidationFailed (422) listing every problem of every line: no such variant (or
    ambiguous), no such or inactive location, a price with more decimals than the currency
    has, no price given where the variant has none.
    """
    errors: list[dict[str, Any]] = []
    variants: list[inventory_service.SellableVariant] | None = None
    try:
        variants = await inventory_service.resolve_variants(
            db,
            principal,
            references=[
                inventory_service.VariantReference(
                    item_id=line.item_id, variant_id=line.variant_id, sku=line.sku
                )
                for line in lines
            ],
            locations=where,
        )
    except ValidationFailed as invalid:
        errors.extend(invalid.extensions["errors"])
    prices: list[Decimal | None] = []
    for index, (line, location) in enumerate(zip(lines, where, strict=True)):
        if line.location_id is not None:
            place = places.get(line.location_id)
            if place is None:
                errors.append(_invalid([*location, "location_id"], "No such location."))
            elif not place[1]:
                errors.append(_invalid([*location, "location_id"], "This location is not active."))
        price = line.unit_price
        if price is None and variants is not None:
            price = variants[index].price
            if price is None:
                errors.append(
                    _invalid(
                        [*location, "unit_price"],
                        "The variant has no price; give `unit_price`.",
                        "missing",
                    )
                )
            elif not money.fits(price, currency):
                errors.append(
                    _invalid(
                        [*location, "unit_price"],
                        f"The variant's price {price} does not fit: {_decimals(currency)} "
                        "Give `unit_price`.",
                    )
                )
        elif price is not None and not money.fits(price, currency):
            errors.append(_invalid([*location, "unit_price"], _decimals(currency)))
        prices.append(price)
    if errors or variants is None:
        raise ValidationFailed(errors)
    return [
        _Line(
            variant=variant, quantity=line.quantity, unit_price=price, location_id=line.location_id
        )
        for line, variant, price in zip(lines, variants, prices, strict=True)
        if price is not None
    ]


def _check_total(total: Decimal, location: Location) -> None:
    if total > money.MAX_AMOUNT:
        raise ValidationFailed(
            [_invalid(location, f"The order's total would exceed {money.MAX_AMOUNT}.")]
        )


def _demands(lines: Sequence[_Line]) -> list[Demand]:
    return [
        Demand(
            index=index,
            variant_id=line.variant.variant_id,
            quantity=line.quantity,
            location_id=line.location_id,
            backorder=line.variant.allow_backorder,
        )
        for index, line in enumerate(lines)
    ]


async def _reserve(
    db: Connection,
    principal: Principal,
    *,
    lines: Sequence[_Line],
    demands: Sequence[Demand],
    reference: str,
    places: dict[UUID, tuple[int, bool]],
    now: datetime | None,
) -> Plan:
    """Reserve every demand or none, planning on what the lines' variants had available
    when they were resolved. Raises InsufficientStock (409) whose `lines` list every short
    line (`index`, `variant_id`, `sku`, `location_id` if named, `requested`, `available`)."""
    available = {
        (line.variant.variant_id, location_id): units
        for line in lines
        for location_id, units in line.variant.available.items()
    }
    try:
        return await reservation_service.reserve_units(
            db,
            principal,
            demands=demands,
            reference=reference,
            places=places,
            available=available,
            now=now,
        )
    except InsufficientStock as short:
        skus = {demand.index: line.variant.sku for demand, line in zip(demands, lines, strict=True)}
        short_lines = [
            {**line, "sku": skus[line["index"]]} for line in short.extensions.get("lines", [])
        ]
        raise InsufficientStock(
            f"{len(short_lines)} line(s) cannot be filled; nothing was reserved.",
            lines=short_lines,
        ) from short


async def _take_over(
    db: Connection,
    principal: Principal,
    *,
    reservation_id: UUID,
    demands: Sequence[Demand],
    reference: str,
    now: datetime | None,
) -> Plan:
    """Take a held reservation's units over for the order's lines, without a gap.

    The rule: for every variant, the lines ask for exactly the units the hold holds of it
    (lines may group them differently), and a line naming a location must find its units
    held there. The hold's units are placed on the lines like stock on any order (a line
    naming a location first; otherwise one location that holds the whole line, the one
    holding most, else split), and the hold becomes `converted`.

    Raises ValidationFailed (422) for an unknown reservation, ReservationNotHeld (409) when
    it is no longer held (released, converted, past its expiry), ReservationMismatch (409)
    when the lines do not match its units.
    """
    try:
        held = await reservation_service.convert(
            db, principal, reservation_id=reservation_id, reference=reference, now=now
        )
    except ReservationNotFound as error:
        raise ValidationFailed(
            [_invalid(["body", "reservation_id"], "No such reservation.")]
        ) from error
    units: dict[tuple[UUID, UUID], int] = {}
    held_per_variant: dict[UUID, int] = {}
    for line in held:
        level = (line.variant_id, line.location_id)
        units[level] = units.get(level, 0) + line.quantity
        held_per_variant[line.variant_id] = held_per_variant.get(line.variant_id, 0) + line.quantity
    ordered_per_variant: dict[UUID, int] = {}
    for demand in demands:
        ordered_per_variant[demand.variant_id] = (
            ordered_per_variant.get(demand.variant_id, 0) + demand.quantity
        )
    plan = allocate(
        [replace(demand, backorder=False) for demand in demands],
        [
            Candidate(variant_id, location_id, quantity)
            for (variant_id, location_id), quantity in units.items()
        ],
    )
    if held_per_variant != ordered_per_variant or not plan.feasible:
        raise ReservationMismatch(
            "For every variant the lines must ask for exactly the units the reservation holds "
            "of it, and a line naming a location must find them held there.",
            held=[
                {
                    "variant_id": str(line.variant_id),
                    "sku": line.sku,
                    "location_id": str(line.location_id),
                    "quantity": line.quantity,
                }
                for line in held
            ],
        )
    return plan


def _allocations(plan: Plan, line_ids: Sequence[UUID]) -> list[repository.NewAllocation]:
    """The plan's allocations as rows, numbered per line in the plan's (preference) order."""
    rows: list[repository.NewAllocation] = []
    positions: dict[int, int] = {}
    for allocation in plan.allocations:
        positions[allocation.index] = positions.get(allocation.index, 0) + 1
        rows.append(
            repository.NewAllocation(
                line_id=line_ids[allocation.index],
                location_id=allocation.location_id,
                position=positions[allocation.index],
                quantity=allocation.quantity,
            )
        )
    return rows


def _new_lines(lines: Sequence[_Line]) -> list[repository.NewLine]:
    return [
        repository.NewLine(
            id=uuid.uuid4(),
            item_id=line.variant.item_id,
            variant_id=line.variant.variant_id,
            sku=line.variant.sku,
            quantity=line.quantity,
            unit_price=line.unit_price,
            location_id=line.location_id,
        )
        for line in lines
    ]


async def _record(db: Connection, *, tenant_id: str, type: EventType, order: Order) -> None:
    """The order's event, carrying the order as `GET` shows it after the change, without its
    personal data (`customer`, `shipping_address`): consumers that need them read the order."""
    await event_service.record(
        db,
        tenant_id=tenant_id,
        type=type,
        subject=f"orders/{order.id}",
        data=order.model_dump(mode="json", exclude=set(PERSONAL_FIELDS)),
    )


# --- placing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlacedBy:
    """Who places an order through a request, for its audit entry: the request's `origin`
    and `action` (the route's name), as the request's auditor would write them."""

    origin: audit_service.Origin
    action: str


def _placed(
    order_id: UUID,
    body: OrderCreate,
    *,
    total: Decimal,
    lines: Sequence[repository.NewLine],
    allocations: Sequence[repository.NewAllocation],
    exchange_of: UUID | None,
    actor: str,
    created_at: datetime,
    number: int,
) -> Order:
    """The order just inserted, as `GET` will show it, built from what was written (the
    rows as `repository.get` returns them, through the same `_order`) instead of read
    back."""
    pieces: dict[UUID, list[dict[str, Any]]] = {line.id: [] for line in lines}
    for allocation in sorted(allocations, key=lambda allocation: allocation.position):
        pieces[allocation.line_id].append(
            {"location_id": allocation.location_id, "quantity": allocation.quantity}
        )
    row: dict[str, Any] = {
        "id": order_id,
        "number": number,
        "status": OrderStatus.PENDING.value,
        "payment_status": payment_status(total, Decimal(0)).value,
        "currency": body.currency,
        "total": total,
        "amount_paid": Decimal(0),
        "amount_refunded": Decimal(0),
        "exchange_of": exchange_of,
        "notes": body.notes,
        "metadata": body.metadata,
        "shipment": None,
        "reservation_id": body.reservation_id,
        "version": 1,
        "created_by": actor,
        "updated_by": actor,
        "created_at": created_at,
        "updated_at": created_at,
        "lines": [
            {
                "id": line.id,
                "item_id": line.item_id,
                "variant_id": line.variant_id,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "location_id": line.location_id,
                "allocations": pieces[line.id],
            }
            for line in lines
        ],
        "status_history": [{"status": OrderStatus.PENDING.value, "at": created_at, "actor": actor}],
        "payments": [],
        "refunds": [],
    }
    return _order(
        row,  # type: ignore[arg-type]
        customer=body.customer,
        shipping_address=body.shipping_address,
    )


async def create(
    db: Connection,
    principal: Principal,
    *,
    body: OrderCreate,
    blind_index: BlindIndex,
    now: datetime | None = None,
    exchange_of: UUID | None = None,
    audit: PlacedBy | None = None,
) -> Order:
    """Place an order: every line's stock reserved (or a hold's taken over), or nothing.

    Statements, in order: the tenant's locations, the lines' variants with their levels'
    availability, the tenant's data key, the reservation of every level (one statement;
    more only when it is refused or backorders create levels), the order with its lines,
    allocations and first status (the answer is built from what was written), the audit entry
    (when `audit` names who placed it: the request's entry, written here so that it is not
    written after the number), and last the number with the `OrderPlaced` event. The
    counter's row lock is held from that last statement to the commit only.

    Raises ValidationFailed (422) for lines naming no variant or no active location, prices
    that do not fit the currency, a missing price, an unknown reservation; InsufficientStock
    (409) listing every short line; ReservationNotHeld or ReservationMismatch (409).
    """
    tenant_id = _tenant(principal)
    places = await location_service.priorities(db, tenant_id=tenant_id)
    where: list[Location] = [["body", "lines", index] for index in range(len(body.lines))]
    lines = await _resolve(
        db, principal, lines=body.lines, where=where, currency=body.currency, places=places
    )
    total = sum((line.total for line in lines), Decimal(0))
    _check_total(total, ["body", "lines"])
    customer, address = _sealed_personal_data(
        await privacy_service.sealer(db, tenant_id=tenant_id),
        customer=body.customer,
        shipping_address=body.shipping_address,
    )
    order_id = uuid.uuid4()
    reference = reference_of(order_id)
    demands = _demands(lines)
    if body.reservation_id is None:
        plan = await _reserve(
            db,
            principal,
            lines=lines,
            demands=demands,
            reference=reference,
            places=places,
            now=now,
        )
    else:
        plan = await _take_over(
            db,
            principal,
            reservation_id=body.reservation_id,
            demands=demands,
            reference=reference,
            now=now,
        )
    new_lines = _new_lines(lines)
    allocations = _allocations(plan, [line.id for line in new_lines])
    created_at = await repository.insert_order(
        db,
        tenant_id=tenant_id,
        order_id=order_id,
        order=repository.NewOrder(
            payment_status=payment_status(total, Decimal(0)).value,
            currency=body.currency,
            total=total,
            customer=customer,
            customer_email_index=blind_index.email(tenant_id, body.customer.email),
            shipping_address=address,
            notes=body.notes,
            metadata=body.metadata,
            reservation_id=body.reservation_id,
            exchange_of=exchange_of,
        ),
        lines=new_lines,
        allocations=allocations,
        actor=principal.actor,
    )
    order = _placed(
        order_id,
        body,
        total=total,
        lines=new_lines,
        allocations=allocations,
        exchange_of=exchange_of,
        actor=principal.actor,
        created_at=created_at,
        number=0,
    )
    if audit is not None:
        work = recording.current()
        await audit_service.write(
            db,
            tenant_id=tenant_id,
            origin=audit.origin,
            changes=list(work.changes) if work is not None else [],
            otherwise=recording.Change("order", str(order_id), audit.action),
        )
        recording.mark_audited()
    # Last: the counter's row lock is held from here to the commit only.
    number = await repository.assign_number(
        db,
        tenant_id=tenant_id,
        order_id=order_id,
        event=repository.NumberedEvent(
            type=EventType.ORDER_PLACED.value,
            subject=f"orders/{order_id}",
            data=order.model_dump(mode="json", exclude=set(PERSONAL_FIELDS)),
        ),
    )
    return order.model_copy(update={"number": number})


# --- changing ----------------------------------------------------------------------------


async def _lock(
    db: Connection, principal: Principal, *, order_id: UUID, expected_version: int | None
) -> Record:
    """Lock the order. Raises OrderNotFound (404) or VersionMismatch (412)."""
    row = await repository.lock(db, tenant_id=_tenant(principal), order_id=order_id)
    if row is None:
        raise OrderNotFound()
    if expected_version is not None and row["version"] != expected_version:
        raise VersionMismatch("The order has changed since you read it.")
    return row


def _require_editable(current: Record, what: str) -> None:
    status = OrderStatus(current["status"])
    if status not in lifecycle.EDITABLE:
        raise OrderLocked(
            f"The order is {status}; {what} only while it is pending or processed.",
            order_status=status.value,
        )


async def _units(
    db: Connection, *, tenant_id: str, order_id: UUID
) -> list[inventory_service.LevelUnits]:
    return [
        inventory_service.LevelUnits(row["variant_id"], row["location_id"], row["quantity"])
        for row in await repository.units(db, tenant_id=tenant_id, order_id=order_id)
    ]


async def _changed(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    changes: dict[str, Any],
    event: EventType,
) -> Order:
    """Write `changes` (a new version), read the order back and record `event`."""
    tenant_id = _tenant(principal)
    await repository.update(
        db, tenant_id=tenant_id, order_id=order_id, changes=changes, actor=principal.actor
    )
    order = await get(db, principal, order_id=order_id)
    await _record(db, tenant_id=tenant_id, type=event, order=order)
    return order


def _money_changes(
    total: Decimal, paid: Decimal, currency: str, refunded: Decimal = Decimal(0)
) -> dict[str, Any]:
    """The order's new total and payment status. Raises TotalBelowPaid (409) when more was
    paid than the new total (refunds come first)."""
    if total < paid:
        paid_text = money.text(paid, currency)
        raise TotalBelowPaid(
            f"{paid_text} {currency} has been paid; the total may not fall below that.",
            amount_paid=paid_text,
        )
    return {"total": total, "payment_status": payment_status(total, paid, refunded).value}


async def update(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    body: OrderUpdate,
    expected_version: int | None,
    now: datetime | None = None,
) -> Order:
    """Move the order to its next status and/or change its details.

    Shipping turns the order's reservations into deductions and cancelling releases them,
    in this transaction. Raises OrderNotFound (404), VersionMismatch (412),
    InvalidTransition (409, naming the allowed statuses), OrderLocked (409: details change
    only while pending or processed; a shipment only when shipping or shipped),
    InsufficientReserved or InsufficientStock (409, when shipping finds its units gone),
    ValidationFailed (422, an unknown shipping provider).
    """
    tenant_id = _tenant(principal)
    current = await _lock(db, principal, order_id=order_id, expected_version=expected_version)
    status = OrderStatus(current["status"])
    step = lifecycle.transition(status, body.status) if body.status is not None else None
    changes: dict[str, Any] = {}
    details = {
        name: value
        for name, value in body.changes().items()
        if name in ("notes", "metadata", "shipping_address")
    }
    if details:
        _require_editable(current, "its details can change")
        for name, value in details.items():
            changes[name] = (
                (await privacy_service.sealer(db, tenant_id=tenant_id)).seal_json(
                    ADDRESS_FIELD, value.model_dump(exclude_none=True)
                )
                if isinstance(value, ShippingAddress)
                else value
            )
    if body.shipment is not None:
        provider = providers.shipping_provider(body.shipment.provider)
        if provider is None:
            raise ValidationFailed(
                [
                    _invalid(
                        ["body", "shipment", "provider"],
                        "Unknown shipping provider; use one of: "
                        + ", ".join(sorted(providers.SHIPPING_PROVIDERS))
                        + ".",
                    )
                ]
            )
        shipping = step is not None and step.target == OrderStatus.SHIPPED
        if not shipping and status != OrderStatus.SHIPPED:
            raise OrderLocked(
                "A shipment is recorded when the order ships (`status: shipped`) or on a "
                "shipped order.",
                order_status=status.value,
            )
        booked = await provider.create_shipment(
            order_id=str(order_id),
            carrier=body.shipment.carrier,
            tracking_number=body.shipment.tracking_number,
        )
        changes["shipment"] = {
            "carrier": booked.carrier,
            "tracking_number": booked.tracking_number,
            "provider": provider.name,
            "recorded_at": (now or datetime.now(UTC)).isoformat(),
        }
    if step is None:
        if not changes:
            return await get(db, principal, order_id=order_id)
        return await _changed(
            db, principal, order_id=order_id, changes=changes, event=EventType.ORDER_UPDATED
        )
    reference = reference_of(order_id)
    note = f"order {current['number']} {step.target}"
    if step.stock == StockEffect.DEDUCT:
        units = await _units(db, tenant_id=tenant_id, order_id=order_id)
        await inventory_service.ship_units(
            db, principal, units=units, reference=reference, note=note
        )
    elif step.stock == StockEffect.RELEASE:
        units = await _units(db, tenant_id=tenant_id, order_id=order_id)
        await inventory_service.release_units(
            db, principal, units=units, reference=reference, note=note
        )
    await repository.add_status_change(
        db, tenant_id=tenant_id, order_id=order_id, status=step.target.value, actor=principal.actor
    )
    lifecycle.record_transition(order_id, status, step.target)
    changes["status"] = step.target.value
    return await _changed(db, principal, order_id=order_id, changes=changes, event=step.event)


async def add_line(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    body: OrderLineCreate,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Order:
    """Add a line and reserve its units (placed like any order line).

    Raises OrderNotFound (404), VersionMismatch (412), OrderLocked (409) unless the order
    is pending or processed, ValidationFailed (422), InsufficientStock (409).
    """
    tenant_id = _tenant(principal)
    current = await _lock(db, principal, order_id=order_id, expected_version=expected_version)
    _require_editable(current, "lines can be added")
    places = await location_service.priorities(db, tenant_id=tenant_id)
    lines = await _resolve(
        db, principal, lines=[body], where=[["body"]], currency=current["currency"], places=places
    )
    total = current["total"] + lines[0].total
    _check_total(total, ["body", "quantity"])
    changes = _money_changes(
        total, current["amount_paid"], current["currency"], current["amount_refunded"]
    )
    plan = await _reserve(
        db,
        principal,
        lines=lines,
        demands=_demands(lines),
        reference=reference_of(order_id),
        places=places,
        now=now,
    )
    new_lines = _new_lines(lines)
    await repository.insert_lines(db, tenant_id=tenant_id, order_id=order_id, lines=new_lines)
    await repository.insert_allocations(
        db, tenant_id=tenant_id, allocations=_allocations(plan, [new_lines[0].id])
    )
    return await _changed(
        db, principal, order_id=order_id, changes=changes, event=EventType.ORDER_UPDATED
    )


async def _line(db: Connection, principal: Principal, *, order_id: UUID, line_id: UUID) -> Record:
    row = await repository.get_line(
        db, tenant_id=_tenant(principal), order_id=order_id, line_id=line_id
    )
    if row is None:
        raise OrderLineNotFound()
    return row


async def remove_line(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    line_id: UUID,
    expected_version: int | None = None,
) -> Order:
    """Remove a line and release its units.

    Raises OrderNotFound or OrderLineNotFound (404), VersionMismatch (412), OrderLocked
    (409) unless the order is pending or processed, OrderEmpty (409) for its last line,
    TotalBelowPaid (409) when more was paid than the total would be.
    """
    tenant_id = _tenant(principal)
    current = await _lock(db, principal, order_id=order_id, expected_version=expected_version)
    line = await _line(db, principal, order_id=order_id, line_id=line_id)
    _require_editable(current, "lines can be removed")
    if current["line_count"] <= 1:
        raise OrderEmpty("This is the order's last line; cancel the order instead.")
    changes = _money_changes(
        current["total"] - line["unit_price"] * line["quantity"],
        current["amount_paid"],
        current["currency"],
        current["amount_refunded"],
    )
    await inventory_service.release_units(
        db,
        principal,
        units=[
            inventory_service.LevelUnits(
                line["variant_id"], UUID(piece["location_id"]), piece["quantity"]
            )
            for piece in line["allocations"]
        ],
        reference=reference_of(order_id),
        note=f"order {current['number']}: line removed",
    )
    await repository.delete_line(db, tenant_id=tenant_id, line_id=line_id)
    return await _changed(
        db, principal, order_id=order_id, changes=changes, event=EventType.ORDER_UPDATED
    )


async def update_line(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    line_id: UUID,
    body: OrderLineUpdate,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Order:
    """Change a line's quantity (its reservation adjusted by the difference) or unit price.

    More units are placed like a new line's (at the line's location if it named one) and
    reserved; fewer units are released from the line's allocations, the last-placed (least
    preferred) first. Raises OrderNotFound or OrderLineNotFound (404), VersionMismatch
    (412), OrderLocked (409), InsufficientStock (409), TotalBelowPaid (409),
    ValidationFailed (422: a price with more decimals than the currency has).
    """
    tenant_id = _tenant(principal)
    current = await _lock(db, principal, order_id=order_id, expected_version=expected_version)
    line = await _line(db, principal, order_id=order_id, line_id=line_id)
    _require_editable(current, "lines can change")
    unit_price: Decimal = body.unit_price if body.unit_price is not None else line["unit_price"]
    if not money.fits(unit_price, current["currency"]):
        raise ValidationFailed([_invalid(["body", "unit_price"], _decimals(current["currency"]))])
    quantity: int = body.quantity if body.quantity is not None else line["quantity"]
    if quantity == line["quantity"] and unit_price == line["unit_price"]:
        return await get(db, principal, order_id=order_id)
    total = current["total"] - line["unit_price"] * line["quantity"] + unit_price * quantity
    _check_total(total, ["body"])
    changes = _money_changes(
        total, current["amount_paid"], current["currency"], current["amount_refunded"]
    )
    allocations = {
        UUID(piece["location_id"]): (piece["position"], piece["quantity"])
        for piece in line["allocations"]
    }
    reference = reference_of(order_id)
    difference = quantity - line["quantity"]
    if difference > 0:
        allocations = await _reserve_more(
            db,
            principal,
            line=line,
            quantity=difference,
            allocations=allocations,
            reference=reference,
            now=now,
        )
    elif difference < 0:
        allocations = await _release_some(
            db,
            principal,
            line=line,
            quantity=-difference,
            allocations=allocations,
            reference=reference,
            note=f"order {current['number']}: line reduced",
        )
    await repository.update_line(
        db, tenant_id=tenant_id, line_id=line_id, quantity=quantity, unit_price=unit_price
    )
    await repository.replace_allocations(
        db,
        tenant_id=tenant_id,
        line_id=line_id,
        allocations=[
            repository.NewAllocation(line_id, location_id, position, units)
            for location_id, (position, units) in allocations.items()
        ],
    )
    return await _changed(
        db, principal, order_id=order_id, changes=changes, event=EventType.ORDER_UPDATED
    )


async def _reserve_more(
    db: Connection,
    principal: Principal,
    *,
    line: Record,
    quantity: int,
    allocations: Pieces,
    reference: str,
    now: datetime | None,
) -> Pieces:
    """Reserve `quantity` more units for `line`, placed like a new line's (at its location
    if it named one); returns its allocations with them merged in (a new location last).

    Raises InsufficientStock (409), or OrderLocked (409) when the line's variant was
    deleted meanwhile (possible only once none of its units were reserved any more).
    """
    try:
        (variant,) = await inventory_service.resolve_variants(
            db,
            principal,
            references=[inventory_service.VariantReference(variant_id=line["variant_id"])],
            locations=[["body", "quantity"]],
        )
    except ValidationFailed as error:
        raise OrderLocked("The line's variant no longer exists; it cannot grow.") from error
    more = _Line(
        variant=variant,
        quantity=quantity,
        unit_price=line["unit_price"],
        location_id=line["location_id"],
    )
    places = await location_service.priorities(db, tenant_id=_tenant(principal))
    plan = await _reserve(
        db,
        principal,
        lines=[more],
        demands=_demands([more]),
        reference=reference,
        places=places,
        now=now,
    )
    merged = dict(allocations)
    last = max((position for position, _ in merged.values()), default=0)
    for allocation in plan.allocations:
        position, units = merged.get(allocation.location_id, (0, 0))
        if not position:
            last += 1
            position = last
        merged[allocation.location_id] = (position, units + allocation.quantity)
    return merged


async def _release_some(
    db: Connection,
    principal: Principal,
    *,
    line: Record,
    quantity: int,
    allocations: Pieces,
    reference: str,
    note: str,
) -> Pieces:
    """Release `quantity` of `line`'s units, from its last-placed allocation backwards;
    returns the allocations left."""
    left = dict(allocations)
    released: list[inventory_service.LevelUnits] = []
    to_release = quantity
    for location_id, (position, units) in sorted(
        allocations.items(), key=lambda piece: piece[1][0], reverse=True
    ):
        if to_release == 0:
            break
        taken = min(units, to_release)
        to_release -= taken
        released.append(inventory_service.LevelUnits(line["variant_id"], location_id, taken))
        if taken == units:
            del left[location_id]
        else:
            left[location_id] = (position, units - taken)
    await inventory_service.release_units(
        db, principal, units=released, reference=reference, note=note
    )
    return left


# --- payments ----------------------------------------------------------------------------


def _payment_provider(name: str) -> providers.PaymentProvider:
    """The registered payment provider `name`; ValidationFailed (422) for an unknown one."""
    provider = providers.payment_provider(name)
    if provider is None:
        raise ValidationFailed(
            [
                _invalid(
                    ["body", "provider"],
                    "Unknown payment provider; use one of: "
                    + ", ".join(sorted(providers.PAYMENT_PROVIDERS))
                    + ".",
                )
            ]
        )
    return provider


async def record_payment(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    body: PaymentCreate,
    expected_version: int | None = None,
) -> Order:
    """Record a captured payment; `payment_status` follows (unpaid → partially_paid → paid).

    Raises ValidationFailed (422: an unknown provider, an amount with more decimals than
    the currency has), OrderNotFound (404), VersionMismatch (412), OrderLocked (409: a
    canceled order takes no payment), PaymentExceedsTotal (409: more than the order still
    owes; its `due` is in the problem).
    """
    tenant_id = _tenant(principal)
    provider = _payment_provider(body.provider)
    current = await _lock(db, principal, order_id=order_id, expected_version=expected_version)
    currency: str = current["currency"]
    if not money.fits(body.amount, currency):
        raise ValidationFailed([_invalid(["body", "amount"], _decimals(currency))])
    if current["status"] == OrderStatus.CANCELED:
        raise OrderLocked("The order is canceled; it takes no payment.", order_status="canceled")
    total: Decimal = current["total"]
    paid: Decimal = current["amount_paid"]
    due = total - paid
    if body.amount > due:
        raise PaymentExceedsTotal(
            f"The order owes {money.text(due, currency)} {currency}; "
            f"a payment of {money.text(body.amount, currency)} is more than that.",
            due=money.text(due, currency),
        )
    result = await provider.capture(amount=body.amount, currency=currency, reference=body.reference)
    await repository.insert_payment(
        db,
        tenant_id=tenant_id,
        order_id=order_id,
        amount=body.amount,
        provider=provider.name,
        reference=result.reference,
        status=result.outcome.value,
        actor=principal.actor,
    )
    before = {
        "amount_paid": money.text(paid, currency),
        "payment_status": payment_status(total, paid, current["amount_refunded"]).value,
    }
    paid += body.amount
    changes = {
        "amount_paid": paid,
        "payment_status": payment_status(total, paid, current["amount_refunded"]).value,
    }
    # Described for the audit trail too: a payment may come by signed callback, outside any
    # route (whose generic entry would otherwise tell it).
    recording.record_change(
        "order",
        order_id,
        "record_payment",
        before=before,
        after=changes
        | {
            "amount_paid": money.text(paid, currency),
            "amount": money.text(body.amount, currency),
            "provider": provider.name,
        },
    )
    return await _changed(
        db, principal, order_id=order_id, changes=changes, event=EventType.ORDER_UPDATED
    )


# --- returns -----------------------------------------------------------------------------

RETURNABLE = frozenset({OrderStatus.SHIPPED, OrderStatus.DELIVERED})


def return_reference(return_id: UUID) -> str:
    """The `reference` of the stock movements a received return causes."""
    return f"return:{return_id}"


def _return(row: Record) -> Return:
    currency: str = row["currency"]
    lines = [
        ReturnLine(
            line_id=line["line_id"],
            variant_id=line["variant_id"],
            sku=line["sku"],
            quantity=line["quantity"],
            unit_price=money.in_currency(Decimal(line["unit_price"]), currency),
            reason=line["reason"],
            restock=line["restock"],
        )
        for line in row["lines"]
    ]
    value = sum((line.unit_price * line.quantity for line in lines), Decimal(0))
    return Return(
        id=row["id"],
        order_id=row["order_id"],
        status=ReturnStatus(row["status"]),
        lines=lines,
        value=money.in_currency(value, currency),
        exchange_order_id=row["exchange_order_id"],
        version=row["version"],
        created_by=row["created_by"],
        updated_by=row["updated_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def get_return(
    db: Connection, principal: Principal, *, order_id: UUID, return_id: UUID
) -> Return:
    """Raises ReturnNotFound (404), also for another order's or tenant's return."""
    row = await repository.get_return(
        db, tenant_id=_tenant(principal), order_id=order_id, return_id=return_id
    )
    if row is None:
        raise ReturnNotFound()
    return _return(row)


async def list_returns(db: Connection, principal: Principal, *, order_id: UUID) -> list[Return]:
    """The order's returns, oldest first. Raises OrderNotFound (404)."""
    await get(db, principal, order_id=order_id)
    rows = await repository.list_returns(db, tenant_id=_tenant(principal), order_id=order_id)
    return [_return(row) for row in rows]


async def _record_return(
    db: Connection, *, tenant_id: str, type: EventType, returned: Return
) -> None:
    await event_service.record(
        db,
        tenant_id=tenant_id,
        type=type,
        subject=f"orders/{returned.order_id}/returns/{returned.id}",
        data=returned.model_dump(mode="json"),
    )


async def _request_return(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    lines: Sequence[ReturnLineCreate],
    field: str,
) -> tuple[Record, UUID]:
    """Lock the order and insert a `requested` return; returns the order's locked row and
    the return's id. Raises OrderNotFound (404), OrderNotShipped (409), ValidationFailed
    (422: a line of another order), ReturnExceedsShipped (409)."""
    tenant_id = _tenant(principal)
    # The order's row first: concurrent returns of one order queue here, so each one sees
    # every return committed before it (no oversubscribed line).
    current = await _lock(db, principal, order_id=order_id, expected_version=None)
    status = OrderStatus(current["status"])
    if status not in RETURNABLE:
        raise OrderNotShipped(
            f"The order is {status}; only a shipped or delivered order can be returned.",
            order_status=status.value,
        )
    order_lines = {
        row["id"]: row
        for row in await repository.order_lines(db, tenant_id=tenant_id, order_id=order_id)
    }
    unknown = [
        _invalid(["body", field, index, "line_id"], "No such line on this order.")
        for index, line in enumerate(lines)
        if line.line_id not in order_lines
    ]
    if unknown:
        raise ValidationFailed(unknown)
    asked: dict[UUID, int] = {}
    for line in lines:
        asked[line.line_id] = asked.get(line.line_id, 0) + line.quantity
    over = [
        {
            "line_id": str(line_id),
            "sku": order_lines[line_id]["sku"],
            "requested": quantity,
            "returnable": order_lines[line_id]["quantity"] - order_lines[line_id]["returned"],
        }
        for line_id, quantity in asked.items()
        if quantity > order_lines[line_id]["quantity"] - order_lines[line_id]["returned"]
    ]
    if over:
        raise ReturnExceedsShipped(
            f"{len(over)} line(s) ask to return more than was shipped and not yet returned.",
            lines=over,
        )
    return_id = await repository.insert_return(
        db,
        tenant_id=tenant_id,
        order_id=order_id,
        lines=[
            repository.NewReturnLine(line.line_id, line.quantity, line.reason, line.restock)
            for line in lines
        ],
        actor=principal.actor,
    )
    return current, return_id


async def create_return(
    db: Connection, principal: Principal, *, order_id: UUID, body: ReturnCreate
) -> Return:
    """Request a return of shipped units (status `requested`; records `ReturnRequested`).

    A line may take back at most what was shipped of it minus what other returns (requested
    or received, not rejected) take back. Raises OrderNotFound (404), OrderNotShipped
    (409), ReturnExceedsShipped (409, listing the lines with what is `returnable`),
    ValidationFailed (422: a line of another order).
    """
    _, return_id = await _request_return(
        db, principal, order_id=order_id, lines=body.lines, field="lines"
    )
    returned = await get_return(db, principal, order_id=order_id, return_id=return_id)
    await _record_return(
        db, tenant_id=_tenant(principal), type=EventType.RETURN_REQUESTED, returned=returned
    )
    return returned


def _restock_units(
    order_lines: dict[UUID, Record], returned: Return
) -> list[inventory_service.LevelUnits]:
    """Where the returned units of restocked lines go back: the line's allocations in their
    order, after the units earlier received returns already took back from them."""
    units: list[inventory_service.LevelUnits] = []
    taken: dict[UUID, int] = {line_id: row["received"] for line_id, row in order_lines.items()}
    for line in returned.lines:
        row = order_lines[line.line_id]
        skip = taken[line.line_id]
        taken[line.line_id] += line.quantity
        if not line.restock:
            continue
        left = line.quantity
        pieces = [(UUID(piece["location_id"]), piece["quantity"]) for piece in row["allocations"]]
        for location_id, quantity in pieces:
            usable = max(0, quantity - skip)
            skip = max(0, skip - quantity)
            portion = min(usable, left)
            if portion:
                units.append(inventory_service.LevelUnits(line.variant_id, location_id, portion))
                left -= portion
        if left and pieces:  # more returned than allocated (cannot happen): the first place
            units.append(inventory_service.LevelUnits(line.variant_id, pieces[0][0], left))
    return units


async def update_return(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    return_id: UUID,
    body: ReturnUpdate,
    expected_version: int | None = None,
) -> Return:
    """Receive or reject a requested return. On `received`, restocked lines' units go back
    on hand at the line's locations (movements `add`, reason `returned`, reference
    `return:<id>`) and `ReturnReceived` is recorded; a rejection records `ReturnRejected`
    (not in the contract's list: a state change the tenant's systems need to see).

    Raises OrderNotFound or ReturnNotFound (404), VersionMismatch (412), ReturnClosed (409)
    when it was received or rejected already.
    """
    tenant_id = _tenant(principal)
    await _lock(db, principal, order_id=order_id, expected_version=None)
    locked = await repository.lock_return(
        db, tenant_id=tenant_id, order_id=order_id, return_id=return_id
    )
    if locked is None:
        raise ReturnNotFound()
    if expected_version is not None and locked["version"] != expected_version:
        raise VersionMismatch("The return has changed since you read it.")
    if locked["status"] != ReturnStatus.REQUESTED:
        raise ReturnClosed(
            f"The return is {locked['status']} already.", return_status=locked["status"]
        )
    if body.status == ReturnStatus.RECEIVED:
        returned = await get_return(db, principal, order_id=order_id, return_id=return_id)
        order_lines = {
            row["id"]: row
            for row in await repository.order_lines(db, tenant_id=tenant_id, order_id=order_id)
        }
        units = _restock_units(order_lines, returned)
        if units:
            await inventory_service.restock_units(
                db,
                principal,
                units=units,
                reference=return_reference(return_id),
                note=f"return of order {order_id}",
            )
    await repository.update_return(
        db, tenant_id=tenant_id, return_id=return_id, actor=principal.actor, status=body.status
    )
    returned = await get_return(db, principal, order_id=order_id, return_id=return_id)
    await _record_return(
        db,
        tenant_id=tenant_id,
        type=EventType.RETURN_RECEIVED
        if body.status == ReturnStatus.RECEIVED
        else EventType.RETURN_REJECTED,
        returned=returned,
    )
    return returned


# --- refunds -----------------------------------------------------------------------------


async def refund(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    body: RefundCreate,
    expected_version: int | None = None,
) -> Order:
    """Give money back through the payment provider (`manual`: by hand); `payment_status`
    becomes `partially_refunded` or, once everything paid went back, `refunded`. Records
    `RefundIssued` (its data: the order, with its `refunds`).

    Raises ValidationFailed (422: an unknown provider, an amount with more decimals than the
    currency has, a `return_id` that is not one of the order's returns), OrderNotFound
    (404), VersionMismatch (412), RefundExceedsPaid (409, with `refundable`).
    """
    tenant_id = _tenant(principal)
    provider = _payment_provider(body.provider)
    current = await _lock(db, principal, order_id=order_id, expected_version=expected_version)
    currency: str = current["currency"]
    if not money.fits(body.amount, currency):
        raise ValidationFailed([_invalid(["body", "amount"], _decimals(currency))])
    if body.return_id is not None and (
        await repository.get_return(
            db, tenant_id=tenant_id, order_id=order_id, return_id=body.return_id
        )
        is None
    ):
        raise ValidationFailed([_invalid(["body", "return_id"], "No such return of this order.")])
    paid: Decimal = current["amount_paid"]
    refunded: Decimal = current["amount_refunded"]
    refundable = paid - refunded
    if body.amount > refundable:
        raise RefundExceedsPaid(
            f"{money.text(refundable, currency)} {currency} was paid and not refunded; "
            f"a refund of {money.text(body.amount, currency)} is more than that.",
            refundable=money.text(refundable, currency),
        )
    result = await provider.refund(amount=body.amount, currency=currency, reference=body.reference)
    await repository.insert_refund(
        db,
        tenant_id=tenant_id,
        order_id=order_id,
        amount=body.amount,
        reason=body.reason,
        return_id=body.return_id,
        provider=provider.name,
        reference=result.reference,
        actor=principal.actor,
    )
    refunded += body.amount
    return await _changed(
        db,
        principal,
        order_id=order_id,
        changes={
            "amount_refunded": refunded,
            "payment_status": payment_status(current["total"], paid, refunded).value,
        },
        event=EventType.REFUND_ISSUED,
    )


# --- exchanges ---------------------------------------------------------------------------


async def exchange(
    db: Connection,
    principal: Principal,
    *,
    order_id: UUID,
    body: ExchangeCreate,
    blind_index: BlindIndex,
    now: datetime | None = None,
) -> Exchange:
    """Return units of a shipped order and place a new, linked order in their place: same
    customer, currency and address, `exchange_of` (and `metadata.exchange_of`) naming the
    original. The new lines are reserved like any order's, all or nothing: if they cannot
    be, nothing is created (the whole transaction rolls back).

    Raises what `create_return` and `create` raise (404, 409 `order-not-shipped`,
    `return-exceeds-shipped`, `insufficient-stock`, 422).
    """
    tenant_id = _tenant(principal)
    _, return_id = await _request_return(
        db, principal, order_id=order_id, lines=body.return_lines, field="return_lines"
    )
    original = await get(db, principal, order_id=order_id)
    new_order = await create(
        db,
        principal,
        body=OrderCreate(
            customer=original.customer,
            shipping_address=original.shipping_address,
            currency=original.currency,
            lines=body.new_lines,
            metadata={"exchange_of": str(order_id)},
        ),
        blind_index=blind_index,
        now=now,
        exchange_of=order_id,
    )
    await repository.update_return(
        db,
        tenant_id=tenant_id,
        return_id=return_id,
        actor=principal.actor,
        exchange_order_id=new_order.id,
    )
    returned = await get_return(db, principal, order_id=order_id, return_id=return_id)
    await _record_return(
        db, tenant_id=tenant_id, type=EventType.RETURN_REQUESTED, returned=returned
    )
    return Exchange(
        return_=returned,
        order=new_order,
        price_difference=money.in_currency(new_order.total - returned.value, original.currency),
    )


# --- integration callbacks ---------------------------------------------------------------


def known_provider(name: str) -> bool:
    """Whether a payment or shipping provider of that name is registered."""
    return name in providers.PAYMENT_PROVIDERS or name in providers.SHIPPING_PROVIDERS


async def rotate_secret(db: Connection, principal: Principal, *, provider: str) -> CallbackSecret:
    """Create (or replace) the tenant's callback secret for `provider`; it is shown only in
    this answer. Raises ProviderNotFound (404)."""
    if not known_provider(provider):
        raise ProviderNotFound(f"No provider `{provider}`.")
    tenant_id = _tenant(principal)
    secret = signature.new_secret()
    sealer = await privacy_service.sealer(db, tenant_id=tenant_id)
    row = await repository.put_secret(
        db,
        tenant_id=tenant_id,
        provider=provider,
        secret=sealer.seal_json(SECRET_FIELD, secret),
        actor=principal.actor,
    )
    return CallbackSecret(provider=row["provider"], secret=secret, created_at=row["created_at"])


CALLBACK_PAYLOAD: TypeAdapter[PaymentCaptured | ShipmentDelivered] = TypeAdapter(CallbackPayload)


async def handle_callback(
    db: Connection,
    *,
    tenant_id: str,
    provider: str,
    headers: Mapping[str, str],
    body: bytes,
    now: datetime | None = None,
) -> CallbackResult:
    """Handle a signed callback from `provider`, in the tenant's transaction (`db` bound to
    it) and as `system`: `payment.captured` records a payment, `shipment.delivered` moves a
    shipped order to delivered. A `webhook-id` handled before changes nothing (`duplicate`).

    Raises ProviderNotFound (404), InvalidSignature (401: no secret set, a bad, missing or
    stale signature), ValidationFailed (422: an unreadable payload), and what the change
    raises (OrderNotFound 404, PaymentExceedsTotal or InvalidTransition 409).
    """
    if not known_provider(provider):
        raise ProviderNotFound(f"No provider `{provider}`.")
    sealed = await repository.get_secret(db, tenant_id=tenant_id, provider=provider)
    if sealed is None:
        raise InvalidSignature("No callback secret is set for this provider.")
    secret = str(
        await privacy_service.open_json(db, tenant_id=tenant_id, field=SECRET_FIELD, sealed=sealed)
    )
    webhook_id = signature.verify(secret, headers=headers, body=body, now=now or datetime.now(UTC))
    if not await repository.claim_callback(
        db, tenant_id=tenant_id, provider=provider, webhook_id=webhook_id
    ):
        return CallbackResult(webhook_id=webhook_id, outcome="duplicate")
    try:
        payload = CALLBACK_PAYLOAD.validate_json(body)
    except PydanticValidationError as error:
        raise ValidationFailed(
            [
                _invalid(["body", *issue["loc"]], issue["msg"], issue["type"])
                for issue in error.errors(include_url=False)
            ]
        ) from error
    system = Principal.system(tenant_id)
    if isinstance(payload, PaymentCaptured):
        if providers.payment_provider(provider) is None:
            raise ValidationFailed(
                [_invalid(["body", "type"], f"`{provider}` is not a payment provider.")]
            )
        await record_payment(
            db,
            system,
            order_id=payload.order_id,
            body=PaymentCreate(
                amount=payload.amount, provider=provider, reference=payload.reference
            ),
        )
    else:
        await update(
            db,
            system,
            order_id=payload.order_id,
            body=OrderUpdate(status=OrderStatus.DELIVERED),
            expected_version=None,
            now=now,
        )
    return CallbackResult(webhook_id=webhook_id, outcome="processed", order_id=payload.order_id)


# --- expiry of unpaid orders -------------------------------------------------------------


async def expire_unpaid(
    db: Connection, *, tenant_id: str, minutes: int, now: datetime, limit: int
) -> int:
    """Cancel (as `system`) up to `limit` pending orders with nothing paid that were placed
    more than `minutes` ago, releasing their stock; returns how many. Each order is locked
    and checked again first, so one paid or moved meanwhile is left alone."""
    system = Principal.system(tenant_id)
    cutoff = now - timedelta(minutes=minutes)
    canceled = 0
    for order_id in await repository.unpaid_due(
        db, tenant_id=tenant_id, placed_before=cutoff, limit=limit
    ):
        current = await _lock(db, system, order_id=order_id, expected_version=None)
        if (
            current["status"] != OrderStatus.PENDING
            or current["amount_paid"] > 0
            or current["created_at"] >= cutoff
        ):
            continue
        await update(
            db,
            system,
            order_id=order_id,
            body=OrderUpdate(status=OrderStatus.CANCELED),
            expected_version=None,
            now=now,
        )
        canceled += 1
    return canceled
