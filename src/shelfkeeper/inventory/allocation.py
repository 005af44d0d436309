"""Where a hold (or an order) takes its stock from: a pure function, no database.

`allocate` turns requested lines into quantities per stock level, or says which lines are
short. The rules:

- A line naming a location is taken there. Lines naming locations are placed first, in
  request order, so they are never starved by a line that could have gone elsewhere.
- A line naming none goes to ONE location that can fill it whole if there is one: the
  highest `priority` first, then the most available, then the lowest location id (so the
  choice is deterministic). Otherwise it is split across locations in that same order.
- Demand for the same level is summed: every line is checked against what the request's
  earlier lines left over, never against the level alone.
- A short line is reported with what was left for it (`available`), and takes that much,
  so the `available` of all short lines never adds up to more than there is.
- A variant that allows backorders is never short while it has an active location: what
  no location holds is promised at the first location in the order above.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

Level = tuple[UUID, UUID]
"""A stock level's key: `(variant_id, location_id)`, also the global lock order."""


@dataclass(frozen=True)
class Demand:
    """One requested line."""

    index: int
    variant_id: UUID
    quantity: int
    location_id: UUID | None = None
    backorder: bool = False


@dataclass(frozen=True)
class Candidate:
    """A level that may give stock: an active location's units of a variant."""

    variant_id: UUID
    location_id: UUID
    available: int
    priority: int = 0


@dataclass(frozen=True)
class Allocation:
    """`quantity` of line `index` taken at one level."""

    index: int
    variant_id: UUID
    location_id: UUID
    quantity: int


@dataclass(frozen=True)
class Shortage:
    """Line `index` cannot be filled: `available` was left for it (at its location, or in
    all active locations together when it names none)."""

    index: int
    variant_id: UUID
    location_id: UUID | None
    requested: int
    available: int


@dataclass(frozen=True)
class Plan:
    allocations: tuple[Allocation, ...]
    shortages: tuple[Shortage, ...]

    @property
    def feasible(self) -> bool:
        return not self.shortages

    def by_level(self) -> dict[Level, int]:
        """The quantity to take at each level, summed over lines, in the global lock order."""
        totals: dict[Level, int] = defaultdict(int)
        for allocation in self.allocations:
            totals[(allocation.variant_id, allocation.location_id)] += allocation.quantity
        return dict(sorted(totals.items()))


def _preference(priority: int, available: int, location_id: UUID) -> tuple[int, int, UUID]:
    return (-priority, -available, location_id)


def allocate(demands: Sequence[Demand], candidates: Iterable[Candidate]) -> Plan:
    """Place every demand, or report the short ones (see the module's rules).

    A located demand whose level is not among `candidates` finds nothing available there
    (a backorder demand is placed there all the same). Allocations come in request order.
    """
    remaining: dict[Level, int] = {}
    places: dict[UUID, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        remaining[(candidate.variant_id, candidate.location_id)] = candidate.available
        places[candidate.variant_id].append(candidate)

    allocations: dict[int, list[Allocation]] = defaultdict(list)
    shortages: list[Shortage] = []

    def take(demand: Demand, location_id: UUID, quantity: int) -> None:
        level = (demand.variant_id, location_id)
        remaining[level] = remaining.get(level, 0) - quantity
        allocations[demand.index].append(
            Allocation(demand.index, demand.variant_id, location_id, quantity)
        )

    located = [demand for demand in demands if demand.location_id is not None]
    unlocated = [demand for demand in demands if demand.location_id is None]
    for demand in located:
        assert demand.location_id is not None
        left = max(remaining.get((demand.variant_id, demand.location_id), 0), 0)
        if demand.backorder or left >= demand.quantity:
            take(demand, demand.location_id, demand.quantity)
            continue
        shortages.append(
            Shortage(demand.index, demand.variant_id, demand.location_id, demand.quantity, left)
        )
        level = (demand.variant_id, demand.location_id)
        remaining[level] = min(remaining.get(level, 0), 0)

    for demand in unlocated:
        order = sorted(
            places[demand.variant_id],
            key=lambda place: _preference(
                place.priority,
                remaining[(demand.variant_id, place.location_id)],
                place.location_id,
            ),
        )
        left_at = {
            place.location_id: remaining[(demand.variant_id, place.location_id)] for place in order
        }
        whole = next(
            (place for place in order if left_at[place.location_id] >= demand.quantity), None
        )
        if whole is not None:
            take(demand, whole.location_id, demand.quantity)
            continue
        total = sum(max(units, 0) for units in left_at.values())
        if total < demand.quantity and not (demand.backorder and order):
            shortages.append(
                Shortage(demand.index, demand.variant_id, None, demand.quantity, total)
            )
            for location_id in left_at:
                remaining[(demand.variant_id, location_id)] = min(
                    remaining[(demand.variant_id, location_id)], 0
                )
            continue
        needed = demand.quantity
        pieces: dict[UUID, int] = {}
        for place in order:
            units = min(max(left_at[place.location_id], 0), needed)
            if units > 0:
                pieces[place.location_id] = units
                needed -= units
        if needed > 0:  # backorder: the rest is promised at the first location
            pieces[order[0].location_id] = pieces.get(order[0].location_id, 0) + needed
        for place in order:
            if place.location_id in pieces:
                take(demand, place.location_id, pieces[place.location_id])

    return Plan(
        allocations=tuple(
            allocation for index in sorted(allocations) for allocation in allocations[index]
        ),
        shortages=tuple(sorted(shortages, key=lambda shortage: shortage.index)),
    )
