"""Reservations: checkout holds on stock, with an expiry, before payment.

A hold reserves the units of all its lines or of none. Lines without a location are placed
by `allocation.allocate`; the plan's quantities are then reserved in one statement for all
its levels (`repository.reserve_levels`, operation `reserve`, reason `other`, reference
`reservation:<id>`; level by level with `repository.apply` when a backorder may create a
level, or on the retry after a refusal), in the global lock order (variant id, location id),
so concurrent holds cannot deadlock.

A hold past its `expires_at` stops counting at once: when a level refuses, the attempt is
undone (the one statement refuses whole, dropping its locks; level by level, the attempt
rolls back to its savepoint), the due holds on the levels the request needs are expired
(their units released with reason `expired`), and the request is planned and tried once
more; only then is it 409 `insufficient-stock`. `expire_due` is the sweeper that tidies up
the rest. A hold is released (`released`), extended while it lasts, or converted into an
order (`converted`), whose stock it then is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from shelfkeeper.auth.principal import Principal
from shelfkeeper.db.database import Connection, Record
from shelfkeeper.inventory import expiry, repository, reservation_repository
from shelfkeeper.inventory.access import ensure_may_change_stock
from shelfkeeper.inventory.allocation import Candidate, Demand, Level, Plan, Shortage, allocate
from shelfkeeper.inventory.errors import InsufficientStock, ReservationNotFound, ReservationNotHeld
from shelfkeeper.inventory.reservation_schemas import (
    Reservation,
    ReservationCreate,
    ReservationLine,
    ReservationLineCreate,
    ReservationStatus,
)
from shelfkeeper.inventory.schemas import Operation, Reason
from shelfkeeper.kit import recording
from shelfkeeper.kit.pagination import TIMESTAMP_FIELD, Page, SortField, keyset, page_of
from shelfkeeper.kit.problems import ValidationFailed, VersionMismatch
from shelfkeeper.location import service as location_service

SORT_FIELDS = {
    "created_at": SortField("created_at", TIMESTAMP_FIELD),
    "expires_at": SortField("expires_at", TIMESTAMP_FIELD),
}
Places = dict[UUID, tuple[int, bool]]
"""Every location of the tenant: `(priority, active)`."""


def _tenant(principal: Principal) -> str:
    assert principal.tenant_id is not None
    return principal.tenant_id


def _reservation(row: Record) -> Reservation:
    return Reservation(
        id=row["id"],
        status=ReservationStatus(row["status"]),
        expires_at=row["expires_at"],
        lines=[ReservationLine.model_validate(line) for line in row["lines"]],
        reference=row["reference"],
        version=row["version"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# --- reading ---------------------------------------------------------------------------


async def read(
    db: Connection, principal: Principal, *, reservation_id: UUID, now: datetime | None = None
) -> tuple[Reservation, bool]:
    """The hold as it stands at `now` (default: the database's clock), and whether the
    status shown is the stored one.

    A `held` hold past its expiry shows `expired`, swept or not; until it is swept its
    representation has changed without a new version (so it must not be answered with
    304). Raises ReservationNotFound (404), also for another tenant's hold.
    """
    row = await reservation_repository.get(
        db, tenant_id=_tenant(principal), reservation_id=reservation_id, now=now
    )
    if row is None:
        raise ReservationNotFound()
    return _reservation(row), row["status"] == row["stored_status"]


async def get(
    db: Connection, principal: Principal, *, reservation_id: UUID, now: datetime | None = None
) -> Reservation:
    """The hold as it stands at `now` (see `read`). Raises ReservationNotFound (404)."""
    reservation, _ = await read(db, principal, reservation_id=reservation_id, now=now)
    return reservation


async def list_reservations(
    db: Connection,
    principal: Principal,
    *,
    sort: str,
    cursor: str | None,
    limit: int,
    status: ReservationStatus | None = None,
    now: datetime | None = None,
) -> Page[Reservation]:
    page = keyset(sort=sort, fields=SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=4)
    rows = await reservation_repository.list_page(
        db,
        tenant_id=_tenant(principal),
        keyset=page,
        status=status.value if status is not None else None,
        now=now,
    )
    sort_name = sort.removeprefix("-")
    return page_of(
        [_reservation(row) for row in rows],
        limit=limit,
        sort=sort,
        sort_value=lambda reservation: getattr(reservation, sort_name),
        row_id=lambda reservation: reservation.id,
    )


# --- creating --------------------------------------------------------------------------


def _invalid(errors: list[dict[str, Any]], where: list[str | int], message: str) -> None:
    errors.append({"loc": where, "msg": message, "type": "value_error"})


async def _demands(
    db: Connection, *, tenant_id: str, lines: Sequence[ReservationLineCreate], places: Places
) -> list[Demand]:
    """The requested lines, resolved. Raises ValidationFailed (422) listing every line that
    names no variant (or a `variant_id` and `sku` that disagree) or no active location."""
    rows = await repository.find_variants(
        db,
        tenant_id=tenant_id,
        variant_ids=[line.variant_id for line in lines if line.variant_id is not None],
        skus=[line.sku for line in lines if line.sku is not None],
    )
    by_id = {row["id"]: row for row in rows}
    by_sku = {row["sku"]: row for row in rows}
    errors: list[dict[str, Any]] = []
    demands: list[Demand] = []
    for index, line in enumerate(lines):
        where: list[str | int] = ["body", "lines", index]
        if line.variant_id is not None:
            variant = by_id.get(line.variant_id)
            if variant is None:
                _invalid(errors, [*where, "variant_id"], "No such variant.")
            elif line.sku is not None and variant["sku"] != line.sku:
                _invalid(errors, [*where, "sku"], "`variant_id` and `sku` name different variants.")
                variant = None
        else:
            variant = by_sku.get(line.sku)
            if variant is None:
                _invalid(
                    errors,
                    [*where, "sku"],
                    "No variant has this SKU (an item's own SKU names no single variant when "
                    "the item has several).",
                )
        placed = True
        if line.location_id is not None:
            place = places.get(line.location_id)
            if place is None:
                _invalid(errors, [*where, "location_id"], "No such location.")
                placed = False
            elif not place[1]:
                _invalid(errors, [*where, "location_id"], "This location is not active.")
                placed = False
        if variant is not None and placed:
            demands.append(
                Demand(
                    index=index,
                    variant_id=variant["id"],
                    quantity=line.quantity,
                    location_id=line.location_id,
                    backorder=variant["allow_backorder"],
                )
            )
    if errors:
        raise ValidationFailed(errors)
    return demands


async def _available(
    db: Connection,
    *,
    tenant_id: str,
    demands: Sequence[Demand],
    released: Sequence[expiry.HeldUnits] = (),
) -> dict[Level, int]:
    """Available units of every level of the demanded variants (a plain read), counting the
    units of `released` (expired holds whose release is still to come) as available."""
    rows = await repository.levels_of_variants(
        db, tenant_id=tenant_id, variant_ids=sorted({demand.variant_id for demand in demands})
    )
    available = {
        (row["variant_id"], row["location_id"]): row["on_hand"] - row["reserved"] for row in rows
    }
    for units in released:
        if units.level in available:
            available[units.level] += units.quantity
    return available


def _candidates(
    demands: Sequence[Demand], places: Places, available: dict[Level, int]
) -> list[Candidate]:
    """The levels the demands may take from: every existing level at an active location,
    and for a variant that allows backorders every active location (its level is created
    by the reservation)."""
    backorder = {demand.variant_id: demand.backorder for demand in demands}
    candidates = []
    for variant_id, allows in sorted(backorder.items()):
        for location_id, (priority, active) in places.items():
            level = (variant_id, location_id)
            if active and (level in available or allows):
                candidates.append(
                    Candidate(variant_id, location_id, available.get(level, 0), priority)
                )
    return candidates


def _needed(demands: Sequence[Demand], places: Places, levels: Iterable[Level]) -> set[Level]:
    """The existing levels the request may take from (where expired holds matter)."""
    needed: set[Level] = set()
    for demand in demands:
        if demand.location_id is not None:
            needed.add((demand.variant_id, demand.location_id))
    unlocated = {demand.variant_id for demand in demands if demand.location_id is None}
    for variant_id, location_id in levels:
        if variant_id in unlocated and places.get(location_id, (0, False))[1]:
            needed.add((variant_id, location_id))
    return needed


class _Refused(Exception):
    """Rolls an attempt back to its savepoint."""


async def _take(
    db: Connection,
    principal: Principal,
    *,
    plan: Plan,
    demands: Sequence[Demand],
    reference: str,
    released: Sequence[expiry.HeldUnits],
    at_once: bool = False,
) -> set[Level]:
    """Reserve the plan's units (after releasing `released`), all or nothing; `at_once`:
    in one statement, when every level exists and nothing is released.

    Returns the empty set on success, else the level that refused (every level of the plan,
    when they were tried in one statement; the retry that may follow tries them one by
    one), with everything of the attempt undone and its row locks dropped: level by level
    the attempt runs in a savepoint, at once it is one statement that refuses whole.
    """
    tenant_id = _tenant(principal)
    backorder = {demand.variant_id: demand.backorder for demand in demands}
    changes = [
        repository.Change(
            variant_id=variant_id,
            location_id=location_id,
            operation=Operation.RESERVE.value,
            quantity=quantity,
            reason=Reason.OTHER.value,
            note=None,
            reference=reference,
            expected_version=None,
            allow_backorder=backorder[variant_id],
        )
        for (variant_id, location_id), quantity in plan.by_level().items()
    ]
    refused: set[Level] = set()
    if at_once and not released and not any(change.allow_backorder for change in changes):
        # Every level exists (no backorder creates one): one statement for all of them,
        # which changes nothing and keeps no lock when it refuses (no savepoint needed).
        reserved = await repository.reserve_levels(
            db,
            tenant_id=tenant_id,
            levels=[(change.variant_id, change.location_id, change.quantity) for change in changes],
            reason=Reason.OTHER.value,
            note=None,
            reference=reference,
            actor=principal.actor,
        )
        if not reserved:
            refused = {(change.variant_id, change.location_id) for change in changes}
        return refused
    try:
        async with recording.savepoint(db):
            for step in expiry.lock_order(changes, released):
                if step.position is None:
                    await expiry.release_units(
                        db, tenant_id=tenant_id, change=step.change, actor=expiry.EXPIRY_ACTOR
                    )
                    continue
                try:
                    row = await repository.apply(
                        db, tenant_id=tenant_id, change=step.change, actor=principal.actor
                    )
                except repository.UnknownLocation as error:
                    raise ValidationFailed(
                        [
                            {
                                "loc": ["body", "lines"],
                                "msg": "A location of this request was deleted meanwhile.",
                                "type": "value_error",
                            }
                        ]
                    ) from error
                if row is None:
                    refused.add((step.change.variant_id, step.change.location_id))
                    raise _Refused()
    except _Refused:
        pass
    return refused


def _short(shortages: Sequence[Shortage]) -> InsufficientStock:
    lines: list[dict[str, Any]] = []
    for shortage in shortages:
        line: dict[str, Any] = {"index": shortage.index, "variant_id": str(shortage.variant_id)}
        if shortage.location_id is not None:
            line["location_id"] = str(shortage.location_id)
        line |= {"requested": shortage.requested, "available": shortage.available}
        lines.append(line)
    return InsufficientStock(
        f"{len(lines)} line(s) cannot be held; nothing was reserved.", lines=lines
    )


def _raced(
    plan: Plan,
    demands: Sequence[Demand],
    refused: set[Level],
    available: dict[Level, int],
    places: Places,
) -> list[Shortage]:
    """The lines placed on a level that refused, when a fresh read says there would be
    enough (stock that moved between the read and the attempt)."""
    indexes = {
        allocation.index
        for allocation in plan.allocations
        if (allocation.variant_id, allocation.location_id) in refused
    }
    shortages = []
    for demand in demands:
        if demand.index not in indexes:
            continue
        if demand.location_id is not None:
            left = available.get((demand.variant_id, demand.location_id), 0)
        else:
            left = sum(
                max(units, 0)
                for (variant_id, location_id), units in available.items()
                if variant_id == demand.variant_id and places.get(location_id, (0, False))[1]
            )
        shortages.append(
            Shortage(
                demand.index, demand.variant_id, demand.location_id, demand.quantity, max(left, 0)
            )
        )
    return shortages


async def create(
    db: Connection, principal: Principal, *, body: ReservationCreate, now: datetime | None = None
) -> Reservation:
    """Hold stock for every line, or for none.

    Raises ValidationFailed (422) for a line naming no variant or no active location, and
    InsufficientStock (409) listing every short line (`index`, `variant_id`, `location_id`
    if named, `requested`, `available`), after holds past their expiry on the levels it
    needs have stopped counting. `now` defaults to the database's clock. Raises Forbidden
    (403) for a line naming a location the principal may not change stock at; lines without
    a location are then placed only where it may.
    """
    tenant_id = _tenant(principal)
    ensure_may_change_stock(
        principal, [line.location_id for line in body.lines if line.location_id is not None]
    )
    places = await location_service.priorities(db, tenant_id=tenant_id)
    demands = await _demands(db, tenant_id=tenant_id, lines=body.lines, places=places)
    reservation_id = await reservation_repository.insert(
        db, tenant_id=tenant_id, ttl_seconds=body.ttl_seconds, now=now, actor=principal.actor
    )
    plan = await reserve_units(
        db,
        principal,
        demands=demands,
        reference=expiry.hold_reference(reservation_id),
        places=places,
        now=now,
    )
    return await _hold(db, principal, reservation_id=reservation_id, plan=plan, now=now)


async def reserve_units(
    db: Connection,
    principal: Principal,
    *,
    demands: Sequence[Demand],
    reference: str,
    places: Places | None = None,
    available: dict[Level, int] | None = None,
    now: datetime | None = None,
) -> Plan:
    """Place and reserve every demand, or none: the machinery of a hold, for orders too.

    Each demand is placed by `allocation.allocate` over the active locations (`places`, read
    when not given), and each level's summed quantity is reserved with one `reserve`
    statement (reason `other`, `reference`), in the global lock order: all of them in one
    statement when every level exists (`repository.reserve_levels`). When a level refuses,
    holds past their expiry on the levels the demands need stop counting (their units are
    released, reason `expired`) and the demands are placed and tried once more. Returns the
    plan whose units are now reserved.

    A principal limited to some locations (a store clerk) has demands without a location
    placed at those only, and a demand naming another location refused (Forbidden, 403).

    The caller checks that the demands name existing variants and active locations. It
    may pass what every level of the demanded variants had `available` when it read them
    (a plain read, as `_available` makes; the first plan is made on it).
    Raises InsufficientStock (409) listing every short demand (`index`, `variant_id`,
    `location_id` if named, `requested`, `available`); nothing is reserved then.
    """
    tenant_id = _tenant(principal)
    ensure_may_change_stock(
        principal, [demand.location_id for demand in demands if demand.location_id is not None]
    )
    if places is None:
        places = await location_service.priorities(db, tenant_id=tenant_id)
    places = {
        location_id: (priority, active and principal.may_change_stock_at(location_id))
        for location_id, (priority, active) in places.items()
    }
    if available is None:
        available = await _available(db, tenant_id=tenant_id, demands=demands)
    plan = allocate(demands, _candidates(demands, places, available))
    refused: set[Level] = set()
    if plan.feasible:
        refused = await _take(
            db,
            principal,
            plan=plan,
            demands=demands,
            reference=reference,
            released=(),
            at_once=True,
        )
        if not refused:
            return plan

    _, released = await expiry.expire_holds(
        db,
        tenant_id=tenant_id,
        levels=_needed(demands, places, available),
        now=now,
        limit=expiry.AT_ONCE_LIMIT,
    )
    if not released and not refused:
        raise _short(plan.shortages)
    available = await _available(db, tenant_id=tenant_id, demands=demands, released=released)
    plan = allocate(demands, _candidates(demands, places, available))
    if not plan.feasible:
        raise _short(plan.shortages)
    refused = await _take(
        db, principal, plan=plan, demands=demands, reference=reference, released=released
    )
    if not refused:
        return plan
    available = await _available(db, tenant_id=tenant_id, demands=demands, released=released)
    fresh = allocate(demands, _candidates(demands, places, available))
    raise _short(fresh.shortages or _raced(plan, demands, refused, available, places))


async def _hold(
    db: Connection,
    principal: Principal,
    *,
    reservation_id: UUID,
    plan: Plan,
    now: datetime | None,
) -> Reservation:
    await reservation_repository.insert_lines(
        db,
        tenant_id=_tenant(principal),
        reservation_id=reservation_id,
        lines=[
            (allocation.variant_id, allocation.location_id, allocation.quantity)
            for allocation in plan.allocations
        ],
    )
    return await get(db, principal, reservation_id=reservation_id, now=now)


# --- changing --------------------------------------------------------------------------


async def _lock_held(
    db: Connection,
    principal: Principal,
    *,
    reservation_id: UUID,
    expected_version: int | None,
    now: datetime | None,
) -> None:
    """Lock the hold; it must still be held (and not past its expiry).

    Raises ReservationNotFound (404), VersionMismatch (412) or ReservationNotHeld (409).
    """
    row = await reservation_repository.lock(
        db, tenant_id=_tenant(principal), reservation_id=reservation_id, now=now
    )
    if row is None:
        raise ReservationNotFound()
    if expected_version is not None and row["version"] != expected_version:
        raise VersionMismatch("The reservation has changed since you read it.")
    if row["status"] != ReservationStatus.HELD:
        raise ReservationNotHeld(
            f"The reservation is {row['status']}; only a held reservation can change.",
            reservation_status=row["status"],
        )


async def release(
    db: Connection,
    principal: Principal,
    *,
    reservation_id: UUID,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Reservation:
    """Give the held units back (status `released`; movements `release`, reason `other`).

    Raises ReservationNotFound (404), VersionMismatch (412), ReservationNotHeld (409)
    when it is released, converted or expired already (also when past its expiry), or
    Forbidden (403) when it holds units at a location the principal may not change stock at.
    """
    tenant_id = _tenant(principal)
    await _lock_held(
        db, principal, reservation_id=reservation_id, expected_version=expected_version, now=now
    )
    held = await reservation_repository.units_by_level(
        db, tenant_id=tenant_id, reservation_id=reservation_id
    )
    ensure_may_change_stock(principal, [row["location_id"] for row in held])
    await reservation_repository.set_status(
        db, tenant_id=tenant_id, reservation_id=reservation_id, status=ReservationStatus.RELEASED
    )
    for row in held:
        units = expiry.HeldUnits(
            reservation_id, row["variant_id"], row["location_id"], row["quantity"]
        )
        await expiry.release_units(
            db,
            tenant_id=tenant_id,
            change=expiry.release_change(units, reason=Reason.OTHER),
            actor=principal.actor,
        )
    return await get(db, principal, reservation_id=reservation_id, now=now)


async def extend(
    db: Connection,
    principal: Principal,
    *,
    reservation_id: UUID,
    ttl_seconds: int,
    expected_version: int | None = None,
    now: datetime | None = None,
) -> Reservation:
    """Hold on for `ttl_seconds` from now (which may also shorten the hold).

    Raises ReservationNotFound (404), VersionMismatch (412), ReservationNotHeld (409): a
    hold past its expiry cannot be extended, its units may be someone else's already; or
    Forbidden (403) when it holds units at a location the principal may not change stock at
    (keeping them held longer is a change there too).
    """
    await _lock_held(
        db, principal, reservation_id=reservation_id, expected_version=expected_version, now=now
    )
    if principal.location_ids is not None:
        held = await reservation_repository.units_by_level(
            db, tenant_id=_tenant(principal), reservation_id=reservation_id
        )
        ensure_may_change_stock(principal, [row["location_id"] for row in held])
    await reservation_repository.extend(
        db,
        tenant_id=_tenant(principal),
        reservation_id=reservation_id,
        ttl_seconds=ttl_seconds,
        now=now,
    )
    return await get(db, principal, reservation_id=reservation_id, now=now)


async def convert(
    db: Connection,
    principal: Principal,
    *,
    reservation_id: UUID,
    reference: str,
    now: datetime | None = None,
) -> list[ReservationLine]:
    """Hand a hold's units over to an order, without a gap: status `converted`, `reference`
    recorded (e.g. `order:<id>`), and the lines returned. The units stay reserved; from now
    on they are the order's, which releases or ships them.

    Raises ReservationNotFound (404) or ReservationNotHeld (409) when it is no longer held
    (released, converted, or past its expiry).
    """
    await _lock_held(db, principal, reservation_id=reservation_id, expected_version=None, now=now)
    await reservation_repository.set_status(
        db,
        tenant_id=_tenant(principal),
        reservation_id=reservation_id,
        status=ReservationStatus.CONVERTED,
        reference=reference,
    )
    reservation = await get(db, principal, reservation_id=reservation_id, now=now)
    return reservation.lines


async def expire_due(
    db: Connection,
    *,
    tenant_id: str,
    now: datetime | None = None,
    limit: int = expiry.SWEEP_LIMIT,
) -> int:
    """Expire up to `limit` due holds of the tenant, releasing their units (reason
    `expired`): the body of the background sweeper. Returns how many were expired; call
    again (in a new transaction) while it returns `limit`. Runs in the caller's
    transaction, which must be bound to `tenant_id`."""
    return await expiry.expire_due(db, tenant_id=tenant_id, now=now, limit=limit)
