"""Expiring holds: at once when a change needs their units, and by the sweeper.

A hold past its `expires_at` must stop counting against availability at once, whether or not
a sweeper has run. Every change that can be refused for want of units (a reservation, a
stock `reserve`, `subtract` or `set`) therefore takes the same path when it is refused: its
attempt is rolled back to a savepoint (which also drops the row locks taken inside it), the
due holds with a line on the levels it needs are marked `expired`, and the attempt is made
again *together with* the release of those holds' units, level by level in the global lock
order (variant id, location id; at one level the releases first). Nothing is ever locked out
of that order, so expiring holds cannot deadlock with other stock changes.

Holds are found with `FOR UPDATE SKIP LOCKED`: a hold another transaction is busy with
(releasing, extending, converting or expiring it) is left to that transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from shelfkeeper.db.database import Connection, Record
from shelfkeeper.inventory import repository, reservation_repository
from shelfkeeper.inventory.allocation import Level
from shelfkeeper.inventory.schemas import Operation, Reason
from shelfkeeper.kit import recording

EXPIRY_ACTOR = "system:expiry"
"""The actor of the movements that release an expired hold's units."""
SWEEP_LIMIT = 500
"""Holds the sweeper expires per call (per transaction)."""
AT_ONCE_LIMIT = 1000
"""Holds a refused change expires on its levels before trying again."""


def hold_reference(reservation_id: UUID) -> str:
    """The `reference` of every movement a hold causes."""
    return f"reservation:{reservation_id}"


@dataclass(frozen=True)
class HeldUnits:
    """Units an expired (or released) hold still has reserved at one level."""

    reservation_id: UUID
    variant_id: UUID
    location_id: UUID
    quantity: int

    @property
    def level(self) -> Level:
        return (self.variant_id, self.location_id)


@dataclass(frozen=True)
class Step:
    """One statement of a run in lock order: a requested change (`position` in the list of
    requested changes) or the release of an expired hold's units (`position` None)."""

    change: repository.Change
    position: int | None


def release_change(units: HeldUnits, *, reason: Reason) -> repository.Change:
    return repository.Change(
        variant_id=units.variant_id,
        location_id=units.location_id,
        operation=Operation.RELEASE.value,
        quantity=units.quantity,
        reason=reason.value,
        note=None,
        reference=hold_reference(units.reservation_id),
        expected_version=None,
        allow_backorder=False,
    )


def lock_order(changes: Sequence[repository.Change], released: Sequence[HeldUnits]) -> list[Step]:
    """The requested changes and the expired holds' releases, in the global lock order.

    At one level, releases come first (so the units they free are there for the request),
    then the requested changes in the order given.
    """
    steps = [Step(release_change(units, reason=Reason.EXPIRED), None) for units in released]
    steps += [Step(change, position) for position, change in enumerate(changes)]
    return sorted(
        steps,
        key=lambda step: (
            step.change.variant_id,
            step.change.location_id,
            step.position is not None,
            step.position or 0,
        ),
    )


async def release_units(
    db: Connection, *, tenant_id: str, change: repository.Change, actor: str
) -> Record | None:
    """Release a hold's units at one level (one statement and its movement).

    Never refused: if fewer units are reserved there than the hold has (a client released
    them by hand with a stock `release`), what is still reserved is released, and nothing
    (no movement, None) when nothing is.
    """
    row = await repository.apply(db, tenant_id=tenant_id, change=change, actor=actor)
    if row is not None:
        return row
    reserved = await repository.lock_reserved(
        db, tenant_id=tenant_id, variant_id=change.variant_id, location_id=change.location_id
    )
    if not reserved:
        return None
    return await repository.apply(
        db,
        tenant_id=tenant_id,
        change=replace(change, quantity=min(reserved, change.quantity)),
        actor=actor,
    )


async def expire_holds(
    db: Connection,
    *,
    tenant_id: str,
    levels: Collection[Level] | None,
    now: datetime | None,
    limit: int,
) -> tuple[int, list[HeldUnits]]:
    """Mark due holds `expired` (those with a line on `levels`, or any with None).

    Returns how many holds were expired and their units per level, in lock order, which
    the caller must release (reason `expired`) in the same transaction.
    """
    rows = await reservation_repository.expire_due(
        db,
        tenant_id=tenant_id,
        levels=None if levels is None else sorted(levels),
        now=now,
        limit=limit,
    )
    expired_ids = sorted({row["reservation_id"] for row in rows})
    for reservation_id in expired_ids:
        recording.record_change(
            "reservation",
            reservation_id,
            "expire",
            before={"status": "held"},
            after={"status": "expired"},
        )
    expired = len(expired_ids)
    units = [
        HeldUnits(
            reservation_id=row["reservation_id"],
            variant_id=row["variant_id"],
            location_id=row["location_id"],
            quantity=row["quantity"],
        )
        for row in rows
        if row["variant_id"] is not None
    ]
    return expired, units


async def expire_due(
    db: Connection, *, tenant_id: str, now: datetime | None = None, limit: int = SWEEP_LIMIT
) -> int:
    """The sweeper's body: expire up to `limit` due holds and release their units.

    Returns how many holds were expired (call again while it returns `limit`). Safe to run
    concurrently with itself and with requests: holds another transaction holds are skipped,
    and levels are changed in the global lock order.
    """
    expired, units = await expire_holds(db, tenant_id=tenant_id, levels=None, now=now, limit=limit)
    for step in lock_order([], units):
        await release_units(db, tenant_id=tenant_id, change=step.change, actor=EXPIRY_ACTOR)
    return expired
