"""Inventory rules: the catalogue (items, variants) and every change to stock.

Reservations (holds with an expiry) live in `reservation_service`; the stock changes here
honour them: a hold past its expiry stops counting at once (see `expiry`).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from shelfkeeper.audit import service as audit_service
from shelfkeeper.auth.principal import Principal
from shelfkeeper.db.database import Connection, Record
from shelfkeeper.inventory import expiry, repository
from shelfkeeper.inventory.access import ensure_may_change_stock
from shelfkeeper.inventory.coalescer import Audit, ReservationCoalescer
from shelfkeeper.inventory.errors import (
    BackordersOutstanding,
    BelowReserved,
    DuplicateSku,
    InsufficientReserved,
    InsufficientStock,
    ItemInUse,
    ItemNotFound,
    LastVariant,
    LevelNotFound,
    VariantNotFound,
    VersionConflict,
)
from shelfkeeper.inventory.schemas import (
    AdjustmentResult,
    AlertItem,
    BatchAdjustments,
    BatchResult,
    Item,
    ItemCreate,
    ItemStock,
    ItemUpdate,
    LevelThresholdUpdate,
    LowStockStatus,
    Movement,
    Operation,
    Reason,
    StockAdjustment,
    StockLevel,
    ThresholdSource,
    Transfer,
    TransferCreate,
    Variant,
    VariantCreate,
    VariantUpdate,
)
from shelfkeeper.kit import recording
from shelfkeeper.kit.pagination import TEXT_FIELD, TIMESTAMP_FIELD, Page, SortField, keyset, page_of
from shelfkeeper.kit.problems import Problem, ValidationFailed, VersionMismatch
from shelfkeeper.location import service as location_service

ITEM_SORT_FIELDS = {
    "name": SortField("name", TEXT_FIELD),
    "sku": SortField("sku", TEXT_FIELD),
    "created_at": SortField("created_at", TIMESTAMP_FIELD),
    "updated_at": SortField("updated_at", TIMESTAMP_FIELD),
}
MOVEMENT_SORT_FIELDS = {"created_at": SortField("created_at", TIMESTAMP_FIELD)}
ALERT_SORT_FIELDS = {"sku": SortField("sku", TEXT_FIELD)}


def _tenant(principal: Principal) -> str:
    assert principal.tenant_id is not None
    return principal.tenant_id


def _item(row: Record) -> Item:
    return Item(
        id=row["id"],
        sku=row["sku"],
        name=row["name"],
        description=row["description"],
        attributes=row["attributes"],
        variants=[Variant.model_validate(variant) for variant in row["variants"]],
        stock=[StockLevel.model_validate(level) for level in row["stock"]],
        low_stock_threshold=row["low_stock_threshold"],
        allow_backorder=row["allow_backorder"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


ITEM_AUDITED = (
    "sku",
    "name",
    "description",
    "attributes",
    "low_stock_threshold",
    "allow_backorder",
)
"""The fields an item's audit entries describe."""


def _audited_item(item: Item) -> dict[str, Any]:
    return item.model_dump(include=set(ITEM_AUDITED))


def _variant(row: Record) -> Variant:
    return Variant(
        id=row["id"],
        sku=row["sku"],
        attributes=row["attributes"],
        price=Decimal(row["price"]) if row["price"] is not None else None,
        version=row["version"],
    )


def _level(row: Record) -> StockLevel:
    return StockLevel(
        variant_id=row["variant_id"],
        location_id=row["location_id"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        available=row["on_hand"] - row["reserved"],
        low_stock_threshold=row["low_stock_threshold"],
        version=row["version"],
    )


def _movement(row: Record, *, id_column: str = "id") -> Movement:
    return Movement(
        id=row[id_column],
        variant_id=row["variant_id"],
        location_id=row["location_id"],
        operation=Operation(row["operation"]),
        quantity=row["quantity"],
        on_hand_after=row["on_hand_after"],
        reserved_after=row["reserved_after"],
        reason=Reason(row["reason"]),
        note=row["note"],
        reference=row["reference"],
        actor=row["actor"],
        created_at=row["created_at"],
    )


def _invalid(
    location: list[str | int], message: str, kind: str = "value_error"
) -> ValidationFailed:
    return ValidationFailed([{"loc": location, "msg": message, "type": kind}])


# --- items ----------------------------------------------------------------------------


async def create_item(db: Connection, principal: Principal, *, body: ItemCreate) -> Item:
    """Create an item with its variants (or one default variant). Raises DuplicateSku (409)."""
    tenant_id = _tenant(principal)
    values = body.model_dump(include={"sku", "name", "description", "low_stock_threshold"})
    values["attributes"] = body.attributes.model_dump()
    values["allow_backorder"] = body.allow_backorder
    item_id = await repository.insert_item(
        db, tenant_id=tenant_id, values=values, actor=principal.actor
    )
    try:
        if body.variants is None:
            variant_id = await repository.insert_variant(
                db,
                tenant_id=tenant_id,
                item_id=item_id,
                sku=body.sku,
                attributes={},
                price=body.price,
            )
            await repository.register_sku(
                db, tenant_id=tenant_id, sku=body.sku, item_id=item_id, variant_id=variant_id
            )
        else:
            await repository.register_sku(
                db, tenant_id=tenant_id, sku=body.sku, item_id=item_id, variant_id=None
            )
            for variant in body.variants:
                await _add_variant(db, tenant_id=tenant_id, item_id=item_id, body=variant)
    except repository.DuplicateSku as error:
        raise DuplicateSku(f"SKU `{error.args[0]}` is already in use.") from error
    item = await get_item(db, principal, item_id=item_id)
    recording.record_change("item", item_id, "create", after=_audited_item(item))
    return item


async def _add_variant(
    db: Connection, *, tenant_id: str, item_id: UUID, body: VariantCreate
) -> UUID:
    variant_id = await repository.insert_variant(
        db,
        tenant_id=tenant_id,
        item_id=item_id,
        sku=body.sku,
        attributes=body.attributes.model_dump(exclude_none=True),
        price=body.price,
    )
    await repository.register_sku(
        db, tenant_id=tenant_id, sku=body.sku, item_id=item_id, variant_id=variant_id
    )
    return variant_id


async def get_item(db: Connection, principal: Principal, *, item_id: UUID) -> Item:
    """Raises ItemNotFound (404), also for another tenant's item."""
    row = await repository.get_item(db, tenant_id=_tenant(principal), item_id=item_id)
    if row is None:
        raise ItemNotFound()
    return _item(row)


async def list_items(
    db: Connection,
    principal: Principal,
    *,
    sort: str,
    cursor: str | None,
    limit: int,
    sku: str | None = None,
    query: str | None = None,
    location_id: UUID | None = None,
    low_stock: bool | None = None,
) -> Page[Item]:
    tenant_id = _tenant(principal)
    page = keyset(sort=sort, fields=ITEM_SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=6)
    rows = await repository.list_items(
        db,
        tenant_id=tenant_id,
        keyset=page,
        filters=repository.ItemFilter(
            sku=sku,
            query=query,
            location_id=location_id,
            low_stock=low_stock,
        ),
    )
    sort_name = sort.removeprefix("-")
    return page_of(
        [_item(row) for row in rows],
        limit=limit,
        sort=sort,
        sort_value=lambda item: getattr(item, sort_name),
        row_id=lambda item: item.id,
    )


async def update_item(
    db: Connection,
    principal: Principal,
    *,
    item_id: UUID,
    body: ItemUpdate,
    expected_version: int | None,
) -> Item:
    """Raises ItemNotFound (404), VersionMismatch (412), or BackordersOutstanding (409) when
    backorders are turned off while more is reserved than on hand somewhere."""
    current = await repository.get_item(db, tenant_id=_tenant(principal), item_id=item_id)
    changes: dict[str, Any] = body.changes()
    if body.attributes is not None:
        changes["attributes"] = body.attributes.model_dump()
    try:
        updated = await repository.update_item(
            db,
            tenant_id=_tenant(principal),
            item_id=item_id,
            changes=changes,
            expected_version=expected_version,
            actor=principal.actor,
        )
    except repository.Oversold as error:
        oversold = error.args[0]
        raise BackordersOutstanding(
            f"{oversold} reserved units are not on hand; release them or add stock first.",
            oversold=oversold,
        ) from error
    if not updated:
        await get_item(db, principal, item_id=item_id)
        raise VersionMismatch("The item has changed since you read it.")
    item = await get_item(db, principal, item_id=item_id)
    if current is not None:
        recording.record_change(
            "item",
            item_id,
            "update",
            before=_audited_item(_item(current)),
            after=_audited_item(item),
        )
    return item


async def delete_item(
    db: Connection, principal: Principal, *, item_id: UUID, expected_version: int | None
) -> None:
    """Delete an item, its variants, levels and their ledger.

    Raises ItemNotFound (404), ItemInUse (409) while any of its stock is reserved, or
    VersionMismatch (412).
    """
    tenant_id = _tenant(principal)
    reserved = await repository.item_reserved(db, tenant_id=tenant_id, item_id=item_id)
    if reserved > 0:
        raise ItemInUse(f"{reserved} units of this item are reserved.", reserved=reserved)
    current = await repository.get_item(db, tenant_id=tenant_id, item_id=item_id)
    if not await repository.delete_item(
        db, tenant_id=tenant_id, item_id=item_id, expected_version=expected_version
    ):
        await get_item(db, principal, item_id=item_id)
        raise VersionMismatch("The item has changed since you read it.")
    if current is not None:
        recording.record_change("item", item_id, "delete", before=_audited_item(_item(current)))


# --- variants -------------------------------------------------------------------------


async def list_variants(db: Connection, principal: Principal, *, item_id: UUID) -> list[Variant]:
    rows = await repository.variants_of(db, tenant_id=_tenant(principal), item_id=item_id)
    if not rows:
        raise ItemNotFound()
    return [_variant(row) for row in rows]


async def get_variant(
    db: Connection, principal: Principal, *, item_id: UUID, variant_id: UUID
) -> Variant:
    for variant in await list_variants(db, principal, item_id=item_id):
        if variant.id == variant_id:
            return variant
    raise VariantNotFound()


async def create_variant(
    db: Connection, principal: Principal, *, item_id: UUID, body: VariantCreate
) -> Variant:
    """Raises ItemNotFound (404) or DuplicateSku (409)."""
    await list_variants(db, principal, item_id=item_id)
    try:
        variant_id = await _add_variant(
            db, tenant_id=_tenant(principal), item_id=item_id, body=body
        )
    except repository.DuplicateSku as error:
        raise DuplicateSku(f"SKU `{body.sku}` is already in use.") from error
    return await get_variant(db, principal, item_id=item_id, variant_id=variant_id)


async def update_variant(
    db: Connection,
    principal: Principal,
    *,
    item_id: UUID,
    variant_id: UUID,
    body: VariantUpdate,
    expected_version: int | None,
) -> Variant:
    """Raises VariantNotFound (404), DuplicateSku (409) or VersionMismatch (412)."""
    tenant_id = _tenant(principal)
    current = await get_variant(db, principal, item_id=item_id, variant_id=variant_id)
    changes: dict[str, Any] = body.changes()
    if body.attributes is not None:
        changes["attributes"] = body.attributes.model_dump(exclude_none=True)
    try:
        if body.sku is not None and body.sku != current.sku:
            await repository.register_sku(
                db, tenant_id=tenant_id, sku=body.sku, item_id=item_id, variant_id=variant_id
            )
        row = await repository.update_variant(
            db,
            tenant_id=tenant_id,
            item_id=item_id,
            variant_id=variant_id,
            changes=changes,
            expected_version=expected_version,
        )
    except repository.DuplicateSku as error:
        raise DuplicateSku(f"SKU `{body.sku}` is already in use.") from error
    if row is None:
        raise VersionMismatch("The variant has changed since you read it.")
    if body.sku is not None and body.sku != current.sku:
        await repository.unregister_sku(db, tenant_id=tenant_id, sku=current.sku)
        item = await get_item(db, principal, item_id=item_id)
        if item.sku == current.sku:  # the item keeps its own SKU
            await repository.register_sku(
                db, tenant_id=tenant_id, sku=current.sku, item_id=item_id, variant_id=None
            )
    return _variant(row)


async def delete_variant(
    db: Connection, principal: Principal, *, item_id: UUID, variant_id: UUID
) -> None:
    """Raises ItemNotFound/VariantNotFound (404), LastVariant (409) or ItemInUse (409)."""
    tenant_id = _tenant(principal)
    if not await repository.lock_item(db, tenant_id=tenant_id, item_id=item_id):
        raise ItemNotFound()
    variants = await list_variants(db, principal, item_id=item_id)
    current = next((variant for variant in variants if variant.id == variant_id), None)
    if current is None:
        raise VariantNotFound()
    if len(variants) == 1:
        raise LastVariant("Delete the item instead.")
    reserved = await repository.variant_reserved(db, tenant_id=tenant_id, variant_id=variant_id)
    if reserved > 0:
        raise ItemInUse(f"{reserved} units of this variant are reserved.", reserved=reserved)
    await repository.delete_variant(db, tenant_id=tenant_id, variant_id=variant_id)
    item = await get_item(db, principal, item_id=item_id)
    if item.sku == current.sku:
        await repository.register_sku(
            db, tenant_id=tenant_id, sku=current.sku, item_id=item_id, variant_id=None
        )


# --- stock ----------------------------------------------------------------------------


async def _resolve_variant(
    db: Connection,
    *,
    tenant_id: str,
    item_id: UUID,
    variant_id: UUID | None,
    sku: str | None,
    location: list[str | int],
) -> tuple[UUID, bool]:
    """The variant an adjustment names, and whether its item allows backorders.

    Raises ItemNotFound (404), or ValidationFailed (422) when the variant is unknown, when
    `variant_id` and `sku` disagree, or when an item with several variants names none.
    """
    rows = await repository.variants_of(db, tenant_id=tenant_id, item_id=item_id)
    if not rows:
        raise ItemNotFound()
    matches = [
        row
        for row in rows
        if (variant_id is None or row["id"] == variant_id) and (sku is None or row["sku"] == sku)
    ]
    if variant_id is None and sku is None:
        if len(rows) > 1:
            raise _invalid(
                [*location, "variant_id"], "This item has several variants; name one.", "missing"
            )
        matches = rows
    if not matches:
        raise _invalid(
            [*location, "variant_id" if variant_id is not None else "sku"],
            "No such variant of this item (or `variant_id` and `sku` disagree).",
        )
    return matches[0]["id"], matches[0]["allow_backorder"]


def _unknown_location(field: list[str | int]) -> ValidationFailed:
    """A 422 on `field`, the path of the location field that names no location."""
    return _invalid(field, "No such location.")


async def _refusal(
    db: Connection, *, tenant_id: str, change: repository.Change, location: list[str | int]
) -> Problem:
    """Explain why a stock change was refused (called only after it was).

    `location` is the path of the change's location field in the request.
    """
    level = await repository.get_level(
        db, tenant_id=tenant_id, variant_id=change.variant_id, location_id=change.location_id
    )
    if level is None and not await _location_exists(db, tenant_id, change.location_id):
        return _unknown_location(location)
    on_hand = level["on_hand"] if level else 0
    reserved = level["reserved"] if level else 0
    version = level["version"] if level else 0
    if change.expected_version is not None and change.expected_version != version:
        return VersionConflict(
            f"The level is at version {version}, not {change.expected_version}.",
            current_version=version,
        )
    if change.operation == Operation.RELEASE:
        return InsufficientReserved(
            f"Only {reserved} reserved; cannot release {change.quantity}.", reserved=reserved
        )
    if change.operation == Operation.SET:
        return BelowReserved(
            f"{reserved} units are reserved; the count cannot go below that.", reserved=reserved
        )
    available = on_hand - reserved
    return InsufficientStock(
        f"Only {available} available; {change.quantity} requested.",
        available=available,
        on_hand=on_hand,
        requested=change.quantity,
    )


async def _location_exists(db: Connection, tenant_id: str, location_id: UUID) -> bool:
    return await location_service.exists(db, tenant_id=tenant_id, location_id=location_id)


async def _try(
    db: Connection,
    principal: Principal,
    *,
    change: repository.Change,
    location: list[str | int],
) -> AdjustmentResult | Problem:
    """Apply one change: its result, or the problem explaining why it was refused.

    Raises ValidationFailed (422, on `location`, the path of the location field) when a
    level would be created at an unknown location; that statement failed, so the
    transaction can run nothing more.
    """
    tenant_id = _tenant(principal)
    try:
        row = await repository.apply(db, tenant_id=tenant_id, change=change, actor=principal.actor)
    except repository.UnknownLocation as error:
        raise _unknown_location(location) from error
    if row is None:
        return await _refusal(db, tenant_id=tenant_id, change=change, location=location)
    return _adjustment(row)


class _Refused(Exception):
    """Rolls an attempt back to its savepoint; carries the attempt's outcomes."""

    def __init__(self, outcomes: list[AdjustmentResult | Problem]) -> None:
        super().__init__()
        self.outcomes = outcomes


WANT_OF_UNITS = (InsufficientStock, BelowReserved)
"""Refusals that units held by an expired hold may have caused."""


async def _run(
    db: Connection,
    principal: Principal,
    *,
    changes: Sequence[tuple[list[str | int], repository.Change]],
    released: Sequence[expiry.HeldUnits],
) -> list[AdjustmentResult | Problem]:
    """Release `released` and try every change, level by level in the global lock order."""
    tenant_id = _tenant(principal)
    outcomes: dict[int, AdjustmentResult | Problem] = {}
    for step in expiry.lock_order([change for _, change in changes], released):
        if step.position is None:
            await expiry.release_units(
                db, tenant_id=tenant_id, change=step.change, actor=expiry.EXPIRY_ACTOR
            )
            continue
        location, change = changes[step.position]
        outcomes[step.position] = await _try(db, principal, change=change, location=location)
    return [outcomes[position] for position in range(len(changes))]


async def _apply_all(
    db: Connection,
    principal: Principal,
    *,
    changes: Sequence[tuple[list[str | int], repository.Change]],
) -> list[AdjustmentResult | Problem]:
    """Try every change in the global lock order: each one's result, or its refusal.

    When changes are refused for want of units, the attempt is rolled back to its
    savepoint, the due holds on those levels expire (their units released, reason
    `expired`), and every change is tried once more after those releases, in one run in
    lock order. A change naming `expected_version` does not expire holds: expiring would
    change the very version it names. `changes` pairs each change with the path of its
    location field. Raises ValidationFailed (422) for an unknown location.
    """
    if len(changes) == 1 and changes[0][1].operation != Operation.SET.value:
        # The hot path: one change that, when refused, wrote nothing and locked nothing (a
        # refused UPDATE locks no row; only `set` may create the level by an upsert, and a
        # refused upsert keeps its row lock). No savepoint needed: two round trips saved.
        outcomes = await _run(db, principal, changes=changes, released=())
    else:
        try:
            async with recording.savepoint(db):
                outcomes = await _run(db, principal, changes=changes, released=())
                if any(isinstance(outcome, Problem) for outcome in outcomes):
                    raise _Refused(outcomes)
                return outcomes
        except _Refused as refused:
            outcomes = refused.outcomes
    short = {
        (change.variant_id, change.location_id)
        for (_, change), outcome in zip(changes, outcomes, strict=True)
        if isinstance(outcome, WANT_OF_UNITS) and change.expected_version is None
    }
    if not short:
        return outcomes
    _, released = await expiry.expire_holds(
        db, tenant_id=_tenant(principal), levels=short, now=None, limit=expiry.AT_ONCE_LIMIT
    )
    if not released:
        return outcomes
    return await _run(db, principal, changes=changes, released=released)


def _change(
    adjustment: StockAdjustment, variant_id: UUID, allow_backorder: bool
) -> repository.Change:
    return repository.Change(
        variant_id=variant_id,
        location_id=adjustment.location_id,
        operation=adjustment.operation.value,
        quantity=adjustment.quantity,
        reason=adjustment.reason.value,
        note=adjustment.note,
        reference=adjustment.reference,
        expected_version=adjustment.expected_version,
        allow_backorder=allow_backorder,
    )


async def adjust(
    db: Connection,
    principal: Principal,
    *,
    item_id: UUID,
    body: StockAdjustment,
    coalescer: ReservationCoalescer | None = None,
    origin: audit_service.Origin | None = None,
) -> AdjustmentResult:
    """Apply one stock operation atomically (one conditional statement plus its movement).

    With a `coalescer` (and the request's audit `origin`), a plain `reserve` takes the
    flash-sale fast path (`_reserve_coalesced`) when it can, with the variant resolved here
    once for both paths.

    Raises Forbidden (403) at a location the principal may not change stock at,
    ItemNotFound (404), ValidationFailed (422), InsufficientStock, InsufficientReserved,
    BelowReserved or VersionConflict (409).
    """
    ensure_may_change_stock(principal, [body.location_id])
    variant_id, allow_backorder = await _resolve_variant(
        db,
        tenant_id=_tenant(principal),
        item_id=item_id,
        variant_id=body.variant_id,
        sku=body.sku,
        location=["body"],
    )
    if (
        coalescer is not None
        and origin is not None
        and body.operation == Operation.RESERVE
        and body.expected_version is None
        and not allow_backorder
    ):
        coalesced = await _reserve_coalesced(
            principal,
            item_id=item_id,
            variant_id=variant_id,
            body=body,
            coalescer=coalescer,
            origin=origin,
        )
        if coalesced is not None:
            return coalesced
    change = _change(body, variant_id, allow_backorder)
    (outcome,) = await _apply_all(db, principal, changes=[(["body", "location_id"], change)])
    if isinstance(outcome, Problem):
        raise outcome
    recording.record(_adjustment_change(item_id, outcome))
    return outcome


STOCK_BEFORE = {
    Operation.ADD: ("on_hand", -1),
    Operation.SUBTRACT: ("on_hand", 1),
    Operation.RESERVE: ("reserved", -1),
    Operation.RELEASE: ("reserved", 1),
}
"""Which count an operation moved, and which way to go to find it before the change."""


def _adjustment_change(item_id: UUID, outcome: AdjustmentResult) -> recording.Change:
    """A stock adjustment, as the audit trail tells it: the level's counts before (where
    the operation tells them) and after, and what was done."""
    movement = outcome.movement
    after: dict[str, Any] = {
        "variant_id": movement.variant_id,
        "location_id": movement.location_id,
        "operation": movement.operation.value,
        "quantity": movement.quantity,
        "reason": movement.reason.value,
        "on_hand": movement.on_hand_after,
        "reserved": movement.reserved_after,
    }
    before: dict[str, Any] = {"reserved": movement.reserved_after}
    if movement.operation in STOCK_BEFORE:
        before["on_hand"] = movement.on_hand_after
        moved, sign = STOCK_BEFORE[movement.operation]
        before[moved] += sign * movement.quantity
    return recording.Change("item", str(item_id), "adjust_stock", before=before, after=after)


async def adjust_batch(
    db: Connection, principal: Principal, *, body: BatchAdjustments
) -> BatchResult:
    """Apply every adjustment or none.

    Every line is checked first: an unknown item, variant or location is a 422 listing each
    such line. Levels are then changed in one global order (variant, location), so
    concurrent batches cannot deadlock. Every line is tried, so the 409 lists each refused
    line with its reason; a refused batch changes nothing (the transaction rolls back).
    Expired holds on a refused line's level stop counting at once (`_apply_all`). A line at
    a location the principal may not change stock at refuses the whole batch (403) first.
    """
    tenant_id = _tenant(principal)
    ensure_may_change_stock(principal, [adjustment.location_id for adjustment in body.adjustments])
    resolved: list[tuple[int, repository.Change]] = []
    errors: list[dict[str, Any]] = []
    known_locations: dict[UUID, bool] = {}
    for index, adjustment in enumerate(body.adjustments):
        location: list[str | int] = ["body", "adjustments", index]
        try:
            variant_id, allow_backorder = await _resolve_variant(
                db,
                tenant_id=tenant_id,
                item_id=adjustment.item_id,
                variant_id=adjustment.variant_id,
                sku=adjustment.sku,
                location=location,
            )
        except ItemNotFound:
            errors.append(
                {"loc": [*location, "item_id"], "msg": "No such item.", "type": "value_error"}
            )
            continue
        except ValidationFailed as invalid:
            errors.extend(invalid.extensions["errors"])
            continue
        if adjustment.location_id not in known_locations:
            known_locations[adjustment.location_id] = await _location_exists(
                db, tenant_id, adjustment.location_id
            )
        if not known_locations[adjustment.location_id]:
            errors.extend(_unknown_location([*location, "location_id"]).extensions["errors"])
            continue
        resolved.append((index, _change(adjustment, variant_id, allow_backorder)))
    if errors:
        raise ValidationFailed(errors)
    outcomes = await _apply_all(
        db,
        principal,
        changes=[
            (["body", "adjustments", index, "location_id"], change) for index, change in resolved
        ],
    )
    results: list[AdjustmentResult] = []
    refusals: list[tuple[int, Problem]] = []
    for (index, _), outcome in zip(resolved, outcomes, strict=True):
        if isinstance(outcome, Problem):
            refusals.append((index, outcome))
        else:
            results.append(outcome)
    if refusals:
        raise _batch_refusal(refusals, total=len(resolved))
    return BatchResult(results=results)


def _batch_refusal(refusals: list[tuple[int, Problem]], *, total: int) -> Problem:
    """One problem for a refused batch: 422 if any line names an unknown location, else the
    first refused line's 409, with every refused line under `lines`."""
    invalid = [refusal for _, refusal in refusals if isinstance(refusal, ValidationFailed)]
    if invalid:
        return ValidationFailed(
            [error for refusal in invalid for error in refusal.extensions["errors"]]
        )
    lines = [
        {"index": index, "type": refusal.document(None)["type"], **refusal.extensions}
        | {"detail": refusal.detail}
        for index, refusal in refusals
    ]
    first = refusals[0][1]
    return type(first)(
        f"{len(refusals)} of {total} adjustments were refused; nothing was changed.",
        lines=lines,
    )


async def transfer(db: Connection, principal: Principal, *, body: TransferCreate) -> Transfer:
    """Move available stock between two locations atomically (two movements).

    The two levels are changed in location order (the global lock order). Raises Forbidden
    (403) unless the principal may change stock at both ends, ValidationFailed (422) for an
    unknown variant or location, or InsufficientStock (409).
    """
    tenant_id = _tenant(principal)
    ensure_may_change_stock(principal, [body.from_location_id, body.to_location_id])
    if body.variant_id is not None:
        variant = await repository.get_variant(db, tenant_id=tenant_id, variant_id=body.variant_id)
        if variant is not None and body.sku is not None and variant["sku"] != body.sku:
            variant = None
    else:
        assert body.sku is not None
        variant = await repository.resolve_sku(db, tenant_id=tenant_id, sku=body.sku)
    if variant is None:
        raise _invalid(["body", "variant_id" if body.variant_id else "sku"], "No such variant.")
    transfer_id = uuid.uuid4()
    reference = body.reference or f"transfer:{transfer_id}"
    legs = sorted(
        [
            (body.from_location_id, Operation.SUBTRACT, "from_location_id"),
            (body.to_location_id, Operation.ADD, "to_location_id"),
        ],
        key=lambda leg: leg[0],
    )
    changes: list[tuple[list[str | int], repository.Change]] = [
        (
            ["body", field],
            repository.Change(
                variant_id=variant["id"],
                location_id=location_id,
                operation=operation.value,
                quantity=body.quantity,
                reason=Reason.TRANSFER.value,
                note=body.note,
                reference=reference,
                expected_version=None,
                allow_backorder=variant["allow_backorder"],
            ),
        )
        for location_id, operation, field in legs
    ]
    movements: dict[Operation, Movement] = {}
    outcomes = await _apply_all(db, principal, changes=changes)
    for (_, operation, _), outcome in zip(legs, outcomes, strict=True):
        if isinstance(outcome, Problem):
            raise outcome
        movements[operation] = outcome.movement
    return Transfer(
        id=transfer_id,
        variant_id=variant["id"],
        from_location_id=body.from_location_id,
        to_location_id=body.to_location_id,
        quantity=body.quantity,
        movements=[movements[Operation.SUBTRACT], movements[Operation.ADD]],
    )


async def list_movements(
    db: Connection,
    principal: Principal,
    *,
    item_id: UUID,
    cursor: str | None,
    limit: int,
    sort: str = "-created_at",
    location_id: UUID | None = None,
    variant_id: UUID | None = None,
) -> Page[Movement]:
    tenant_id = _tenant(principal)
    await get_item(db, principal, item_id=item_id)
    page = keyset(
        sort=sort, fields=MOVEMENT_SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=5
    )
    rows = await repository.list_movements(
        db,
        tenant_id=tenant_id,
        item_id=item_id,
        location_id=location_id,
        variant_id=variant_id,
        keyset=page,
    )
    return page_of(
        [_movement(row) for row in rows],
        limit=limit,
        sort=sort,
        sort_value=lambda movement: movement.created_at,
        row_id=lambda movement: movement.id,
    )


async def item_stock(
    db: Connection,
    principal: Principal,
    *,
    item_id: UUID,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> ItemStock:
    """The item's levels now, or, with `as_of`, what each held then according to the ledger
    (the state after its last movement at or before `as_of`; levels without a movement by
    then are left out).

    Raises ItemNotFound (404), or ValidationFailed (422) when `as_of` is later than `now`
    (default: this moment): the ledger cannot answer for a time still to come.
    """
    tenant_id = _tenant(principal)
    if as_of is not None and as_of > (now or datetime.now(UTC)):
        raise _invalid(
            ["query", "as_of"], "`as_of` is in the future; omit it for the current stock."
        )
    if not await repository.variants_of(db, tenant_id=tenant_id, item_id=item_id):
        raise ItemNotFound()
    if as_of is None:
        rows = await repository.item_levels(db, tenant_id=tenant_id, item_id=item_id)
    else:
        rows = await repository.item_levels_as_of(
            db, tenant_id=tenant_id, item_id=item_id, as_of=as_of
        )
    return ItemStock(item_id=item_id, as_of=as_of, levels=[_level(row) for row in rows])


def _low_stock_status(row: Record) -> LowStockStatus:
    available = row["on_hand"] - row["reserved"]
    threshold = row["threshold"]
    recorded = row["low_stock"]
    return LowStockStatus(
        variant_id=row["variant_id"],
        location_id=row["location_id"],
        on_hand=row["on_hand"],
        reserved=row["reserved"],
        available=available,
        low_stock_threshold=row["low_stock_threshold"],
        version=row["version"],
        sku=row["sku"],
        item=AlertItem(id=row["item_id"], sku=row["item_sku"], name=row["item_name"]),
        threshold=threshold,
        threshold_source=ThresholdSource(row["threshold_source"])
        if threshold is not None
        else None,
        low_stock=threshold is not None and available <= threshold,
        since=row["low_stock_since"] if recorded else None,
        since_version=row["low_stock_version"] if recorded else None,
    )


async def set_level_threshold(
    db: Connection,
    principal: Principal,
    *,
    item_id: UUID,
    location_id: UUID,
    body: LevelThresholdUpdate,
    expected_version: int | None = None,
) -> LowStockStatus:
    """Set (or, with null, clear) one level's own low-stock threshold.

    The level's low-stock state is evaluated afresh: a threshold that puts the level at or
    below it, when it was not, is a downward crossing and records `InventoryLowStock`; one
    that puts it above re-arms it. The level's `version` does not change (no stock moved),
    but `expected_version` (If-Match) must be it.

    Raises Forbidden (403) at a location the principal may not change stock at,
    ItemNotFound or LevelNotFound (404; a level exists once stock was recorded there),
    ValidationFailed (422) for an unknown or unnamed variant, or VersionMismatch (412).
    """
    tenant_id = _tenant(principal)
    ensure_may_change_stock(principal, [location_id])
    variant_id, _ = await _resolve_variant(
        db,
        tenant_id=tenant_id,
        item_id=item_id,
        variant_id=body.variant_id,
        sku=body.sku,
        location=["body"],
    )
    rows = await repository.change_thresholds(
        db,
        tenant_id=tenant_id,
        item_id=item_id,
        variant_id=variant_id,
        location_id=location_id,
        set_level_threshold=True,
        level_threshold=body.low_stock_threshold,
        expected_version=expected_version,
    )
    if rows:
        return _low_stock_status(rows[0])
    level = await repository.get_level(
        db, tenant_id=tenant_id, variant_id=variant_id, location_id=location_id
    )
    if level is None:
        raise LevelNotFound("This variant has no stock level at this location yet.")
    raise VersionMismatch(f"The level is at version {level['version']}.")


async def list_alerts(
    db: Connection,
    principal: Principal,
    *,
    sort: str,
    cursor: str | None,
    limit: int,
    location_id: UUID | None = None,
) -> Page[LowStockStatus]:
    """The levels whose available stock is at or below their threshold (the level's, else
    its item's, else the tenant's default), by variant SKU and then location."""
    page = keyset(
        sort=sort, fields=ALERT_SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=3
    )
    rows = await repository.list_alerts(
        db, tenant_id=_tenant(principal), location_id=location_id, keyset=page
    )
    return page_of(
        [_low_stock_status(row) for row in rows],
        limit=limit,
        sort=sort,
        sort_value=lambda alert: alert.sku,
        row_id=lambda alert: alert.location_id,
    )


# --- for orders -----------------------------------------------------------------------


@dataclass(frozen=True)
class VariantReference:
    """How an order line names what it sells: a variant id, an item id, or a SKU (a
    variant's, or an item's when the item has one variant). Several may be given; they must
    then name the same variant."""

    item_id: UUID | None = None
    variant_id: UUID | None = None
    sku: str | None = None


@dataclass(frozen=True)
class SellableVariant:
    """What a line needs to know about the variant it sells, as it is now: also what each
    of its levels had available when it was read (`available`, location → `on_hand -
    reserved`; a plain read for planning, which the conditional `reserve` decides on)."""

    item_id: UUID
    variant_id: UUID
    sku: str
    price: Decimal | None
    allow_backorder: bool
    available: Mapping[UUID, int]


def _sellable(row: Record) -> SellableVariant:
    return SellableVariant(
        item_id=row["item_id"],
        variant_id=row["id"],
        sku=row["sku"],
        price=Decimal(row["price"]) if row["price"] is not None else None,
        allow_backorder=row["allow_backorder"],
        available=dict(zip(row["level_locations"], row["level_available"], strict=True)),
    )


def _match(
    reference: VariantReference, rows: Sequence[Record]
) -> SellableVariant | tuple[str, str, str]:
    """The variant `reference` names among `rows`, or `(field, message, type)` saying why
    it names none."""
    if reference.variant_id is not None:
        row = next((row for row in rows if row["id"] == reference.variant_id), None)
        if row is None:
            return ("variant_id", "No such variant.", "value_error")
        if reference.item_id is not None and row["item_id"] != reference.item_id:
            return ("item_id", "The variant belongs to another item.", "value_error")
        if reference.sku is not None and reference.sku not in (row["sku"], row["item_sku"]):
            return ("sku", "`variant_id` and `sku` name different variants.", "value_error")
        return _sellable(row)
    if reference.sku is not None:
        named = [row for row in rows if row["sku"] == reference.sku]
        if not named:
            named = [row for row in rows if row["item_sku"] == reference.sku]
        if not named:
            return ("sku", "No item or variant has this SKU.", "value_error")
    else:
        named = [row for row in rows if row["item_id"] == reference.item_id]
        if not named:
            return ("item_id", "No such item.", "value_error")
    if reference.item_id is not None and named[0]["item_id"] != reference.item_id:
        return ("item_id", "`item_id` and `sku` name different items.", "value_error")
    if len(named) > 1:
        return (
            "variant_id",
            "This item has several variants; name one (`variant_id` or the variant's SKU).",
            "missing",
        )
    return _sellable(named[0])


async def resolve_variants(
    db: Connection,
    principal: Principal,
    *,
    references: Sequence[VariantReference],
    locations: Sequence[list[str | int]],
) -> list[SellableVariant]:
    """The variant each reference names, with its item, SKU, price, backorder flag and
    what its levels have available (one statement).

    Raises ValidationFailed (422) listing every reference that names no variant, names
    disagreeing ones, or names an item with several variants without saying which; each
    error's `loc` is the reference's entry in `locations` (the path of the request part
    holding it) followed by the field.
    """
    rows = await repository.variants_for_references(
        db,
        tenant_id=_tenant(principal),
        variant_ids=[ref.variant_id for ref in references if ref.variant_id is not None],
        item_ids=[ref.item_id for ref in references if ref.item_id is not None],
        skus=[ref.sku for ref in references if ref.sku is not None],
    )
    resolved: list[SellableVariant] = []
    errors: list[dict[str, Any]] = []
    for reference, location in zip(references, locations, strict=True):
        match = _match(reference, rows)
        if isinstance(match, SellableVariant):
            resolved.append(match)
        else:
            field, message, kind = match
            errors.append({"loc": [*location, field], "msg": message, "type": kind})
    if errors:
        raise ValidationFailed(errors)
    return resolved


@dataclass(frozen=True)
class LevelUnits:
    """`quantity` units of a variant at one location."""

    variant_id: UUID
    location_id: UUID
    quantity: int


def _by_level(units: Sequence[LevelUnits]) -> list[LevelUnits]:
    """The units summed per level, in the global lock order (variant id, location id)."""
    totals: dict[tuple[UUID, UUID], int] = {}
    for unit in units:
        level = (unit.variant_id, unit.location_id)
        totals[level] = totals.get(level, 0) + unit.quantity
    return [
        LevelUnits(variant_id, location_id, quantity)
        for (variant_id, location_id), quantity in sorted(totals.items())
        if quantity > 0
    ]


async def ship_units(
    db: Connection,
    principal: Principal,
    *,
    units: Sequence[LevelUnits],
    reference: str,
    note: str | None = None,
) -> None:
    """Turn reserved units into a deduction: at each level `on_hand` and `reserved` fall by
    the quantity, in one conditional statement per level (in the global lock order) that
    writes two movements, a `release` and a `subtract`, both with reason `sale`.

    Raises InsufficientReserved (409) when fewer units are reserved at a level (someone
    released them by hand), or InsufficientStock (409) when fewer are on hand (a backorder
    not yet received); the caller's transaction must then roll back. Raises Forbidden (403)
    first when a level is at a location the principal may not change stock at.
    """
    tenant_id = _tenant(principal)
    ensure_may_change_stock(principal, [unit.location_id for unit in units])
    for unit in _by_level(units):
        row = await repository.ship(
            db,
            tenant_id=tenant_id,
            variant_id=unit.variant_id,
            location_id=unit.location_id,
            quantity=unit.quantity,
            reason=Reason.SALE.value,
            note=note,
            reference=reference,
            actor=principal.actor,
        )
        if row is not None:
            continue
        level = await repository.get_level(
            db, tenant_id=tenant_id, variant_id=unit.variant_id, location_id=unit.location_id
        )
        on_hand = level["on_hand"] if level else 0
        reserved = level["reserved"] if level else 0
        variant_id, location_id = str(unit.variant_id), str(unit.location_id)
        if reserved < unit.quantity:
            raise InsufficientReserved(
                f"Only {reserved} units are reserved at this level; cannot ship {unit.quantity}.",
                reserved=reserved,
                requested=unit.quantity,
                variant_id=variant_id,
                location_id=location_id,
            )
        raise InsufficientStock(
            f"Only {on_hand} units are on hand at this level; cannot ship {unit.quantity}.",
            available=on_hand - reserved,
            on_hand=on_hand,
            requested=unit.quantity,
            variant_id=variant_id,
            location_id=location_id,
        )


async def release_units(
    db: Connection,
    principal: Principal,
    *,
    units: Sequence[LevelUnits],
    reference: str,
    note: str | None = None,
) -> None:
    """Give reserved units back (movements `release`, reason `other`), level by level in the
    global lock order. Never refused: where fewer units are still reserved (released by hand
    meanwhile), what is reserved is released. Raises Forbidden (403) first when a level is
    at a location the principal may not change stock at."""
    tenant_id = _tenant(principal)
    ensure_may_change_stock(principal, [unit.location_id for unit in units])
    for unit in _by_level(units):
        await expiry.release_units(
            db,
            tenant_id=tenant_id,
            change=repository.Change(
                variant_id=unit.variant_id,
                location_id=unit.location_id,
                operation=Operation.RELEASE.value,
                quantity=unit.quantity,
                reason=Reason.OTHER.value,
                note=note,
                reference=reference,
                expected_version=None,
                allow_backorder=False,
            ),
            actor=principal.actor,
        )


async def restock_units(
    db: Connection,
    principal: Principal,
    *,
    units: Sequence[LevelUnits],
    reference: str,
    note: str | None = None,
) -> None:
    """Put returned units back on hand (movements `add`, reason `returned`), one conditional
    statement per level in the global lock order (a level deleted meanwhile is created
    again). Raises Forbidden (403) first when a level is at a location the principal may
    not change stock at, ValidationFailed (422) when a location no longer exists."""
    tenant_id = _tenant(principal)
    ensure_may_change_stock(principal, [unit.location_id for unit in units])
    for unit in _by_level(units):
        try:
            await repository.apply(
                db,
                tenant_id=tenant_id,
                change=repository.Change(
                    variant_id=unit.variant_id,
                    location_id=unit.location_id,
                    operation=Operation.ADD.value,
                    quantity=unit.quantity,
                    reason=Reason.RETURNED.value,
                    note=note,
                    reference=reference,
                    expected_version=None,
                    allow_backorder=False,
                ),
                actor=principal.actor,
            )
        except repository.UnknownLocation as error:
            raise _unknown_location(["body", "lines"]) from error


async def low_stock_count(db: Connection, *, tenant_id: str) -> int:
    """How many of the tenant's stock levels are in the low-stock state (available at or
    below their threshold when last changed): for the low-stock metric. `db` must be bound
    to the tenant."""
    return await repository.low_stock_count(db, tenant_id=tenant_id)


async def _reserve_coalesced(
    principal: Principal,
    *,
    item_id: UUID,
    variant_id: UUID,
    body: StockAdjustment,
    coalescer: ReservationCoalescer,
    origin: audit_service.Origin,
) -> AdjustmentResult | None:
    """The flash-sale fast path (`inventory/coalescer.py`) for a plain `reserve` of a
    variant that does not allow backorders (never short, so never hot in the same way):
    decided in a round with whoever else is reserving at the level, with the same answers
    as the plain path. The round writes the request's audit entry (as `origin`) with the
    change.

    Returns None when the plain path must decide instead: a level that does not exist yet,
    or a refusal while holds are due. Raises InsufficientStock (409) as the plain path
    would.
    """

    def describe(row: Record) -> recording.Change:
        return _adjustment_change(item_id, _adjustment(row))

    outcome = await coalescer.reserve(
        tenant_id=_tenant(principal),
        variant_id=variant_id,
        location_id=body.location_id,
        request=repository.Reservation(
            quantity=body.quantity,
            reason=body.reason.value,
            note=body.note,
            reference=body.reference,
            actor=principal.actor,
        ),
        audit=Audit(origin=origin, describe=describe),
    )
    if outcome.plain:
        return None
    if outcome.row is None:
        available = outcome.available or 0
        raise InsufficientStock(
            f"Only {available} available; {body.quantity} requested.",
            available=available,
            on_hand=outcome.on_hand or 0,
            requested=body.quantity,
        )
    recording.mark_audited()
    return _adjustment(outcome.row)


def _adjustment(row: Record) -> AdjustmentResult:
    return AdjustmentResult(level=_level(row), movement=_movement(row, id_column="movement_id"))
