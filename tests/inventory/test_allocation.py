"""Allocation, the pure function: no database, exact plans."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from shelfkeeper.inventory.allocation import (
    Allocation,
    Candidate,
    Demand,
    Shortage,
    allocate,
)

TOWEL = UUID(int=1)
MUG = UUID(int=2)
NORTH = UUID(int=10)
SOUTH = UUID(int=11)
EAST = UUID(int=12)


def test_a_located_line_is_taken_where_it_says() -> None:
    plan = allocate(
        [Demand(index=0, variant_id=TOWEL, quantity=3, location_id=SOUTH)],
        [Candidate(TOWEL, NORTH, 10, priority=5), Candidate(TOWEL, SOUTH, 3)],
    )

    assert plan.feasible
    assert plan.allocations == (Allocation(0, TOWEL, SOUTH, 3),)


def test_one_location_that_fills_the_line_is_preferred_by_priority() -> None:
    plan = allocate(
        [Demand(index=0, variant_id=TOWEL, quantity=4)],
        [
            Candidate(TOWEL, NORTH, 100, priority=0),
            Candidate(TOWEL, SOUTH, 4, priority=5),
            Candidate(TOWEL, EAST, 50, priority=5),
        ],
    )

    # SOUTH and EAST share the top priority; EAST has more available.
    assert plan.allocations == (Allocation(0, TOWEL, EAST, 4),)


def test_a_location_that_can_fill_the_line_beats_a_higher_priority_one_that_cannot() -> None:
    plan = allocate(
        [Demand(index=0, variant_id=TOWEL, quantity=6)],
        [Candidate(TOWEL, NORTH, 5, priority=9), Candidate(TOWEL, SOUTH, 6, priority=1)],
    )

    assert plan.allocations == (Allocation(0, TOWEL, SOUTH, 6),)


def test_equal_priority_and_availability_choose_the_lowest_location_id() -> None:
    plan = allocate(
        [Demand(index=0, variant_id=TOWEL, quantity=1)],
        [Candidate(TOWEL, SOUTH, 5), Candidate(TOWEL, NORTH, 5)],
    )

    assert plan.allocations == (Allocation(0, TOWEL, NORTH, 1),)


def test_a_line_no_location_can_fill_is_split_by_priority_then_availability() -> None:
    plan = allocate(
        [Demand(index=0, variant_id=TOWEL, quantity=10)],
        [
            Candidate(TOWEL, NORTH, 3, priority=1),
            Candidate(TOWEL, SOUTH, 4, priority=2),
            Candidate(TOWEL, EAST, 6, priority=1),
        ],
    )

    assert plan.feasible
    assert plan.allocations == (
        Allocation(0, TOWEL, SOUTH, 4),
        Allocation(0, TOWEL, EAST, 6),
    )


def test_a_short_line_reports_what_all_locations_have_together() -> None:
    plan = allocate(
        [Demand(index=0, variant_id=TOWEL, quantity=10)],
        [Candidate(TOWEL, NORTH, 3), Candidate(TOWEL, SOUTH, 4), Candidate(TOWEL, EAST, -2)],
    )

    assert not plan.feasible
    assert plan.shortages == (Shortage(0, TOWEL, None, 10, 7),)


def test_demand_for_the_same_level_is_summed() -> None:
    plan = allocate(
        [
            Demand(index=0, variant_id=TOWEL, quantity=3, location_id=NORTH),
            Demand(index=1, variant_id=MUG, quantity=1, location_id=NORTH),
            Demand(index=2, variant_id=TOWEL, quantity=3, location_id=NORTH),
        ],
        [Candidate(TOWEL, NORTH, 5), Candidate(MUG, NORTH, 1)],
    )

    # each towel line alone would fit; together they do not: line 2 gets what line 0 left
    assert plan.shortages == (Shortage(2, TOWEL, NORTH, 3, 2),)


def test_the_plan_sums_each_level_in_lock_order() -> None:
    plan = allocate(
        [
            Demand(index=0, variant_id=MUG, quantity=1, location_id=NORTH),
            Demand(index=1, variant_id=TOWEL, quantity=2, location_id=SOUTH),
            Demand(index=2, variant_id=TOWEL, quantity=3, location_id=SOUTH),
            Demand(index=3, variant_id=TOWEL, quantity=1, location_id=NORTH),
        ],
        [Candidate(TOWEL, NORTH, 5), Candidate(TOWEL, SOUTH, 5), Candidate(MUG, NORTH, 5)],
    )

    assert plan.by_level() == {(TOWEL, NORTH): 1, (TOWEL, SOUTH): 5, (MUG, NORTH): 1}
    assert list(plan.by_level()) == [(TOWEL, NORTH), (TOWEL, SOUTH), (MUG, NORTH)]


def test_located_lines_are_placed_before_lines_the_server_places() -> None:
    plan = allocate(
        [
            Demand(index=0, variant_id=TOWEL, quantity=4),
            Demand(index=1, variant_id=TOWEL, quantity=4, location_id=NORTH),
        ],
        [Candidate(TOWEL, NORTH, 4, priority=9), Candidate(TOWEL, SOUTH, 4)],
    )

    # line 0 would take NORTH (higher priority) if it went first, starving line 1
    assert plan.feasible
    assert plan.allocations == (
        Allocation(0, TOWEL, SOUTH, 4),
        Allocation(1, TOWEL, NORTH, 4),
    )


def test_every_short_line_is_reported_and_takes_what_is_left() -> None:
    plan = allocate(
        [
            Demand(index=0, variant_id=TOWEL, quantity=8, location_id=NORTH),
            Demand(index=1, variant_id=TOWEL, quantity=1, location_id=NORTH),
            Demand(index=2, variant_id=MUG, quantity=2),
            Demand(index=3, variant_id=MUG, quantity=9),
        ],
        [Candidate(TOWEL, NORTH, 5), Candidate(MUG, NORTH, 3), Candidate(MUG, SOUTH, 1)],
    )

    assert plan.shortages == (
        Shortage(0, TOWEL, NORTH, 8, 5),
        Shortage(1, TOWEL, NORTH, 1, 0),
        Shortage(3, MUG, None, 9, 2),
    )


def test_a_location_without_a_level_has_nothing() -> None:
    plan = allocate([Demand(index=0, variant_id=TOWEL, quantity=1, location_id=EAST)], [])

    assert plan.shortages == (Shortage(0, TOWEL, EAST, 1, 0),)


def test_backorders_promise_the_rest_at_the_first_location() -> None:
    plan = allocate(
        [
            Demand(index=0, variant_id=TOWEL, quantity=10, backorder=True),
            Demand(index=1, variant_id=TOWEL, quantity=2, location_id=EAST, backorder=True),
        ],
        [
            Candidate(TOWEL, NORTH, 3, priority=1),
            Candidate(TOWEL, SOUTH, 2, priority=0),
            Candidate(TOWEL, EAST, 0, priority=0),
        ],
    )

    assert plan.feasible
    assert plan.allocations == (
        Allocation(0, TOWEL, NORTH, 8),
        Allocation(0, TOWEL, SOUTH, 2),
        Allocation(1, TOWEL, EAST, 2),
    )


def test_backorders_without_any_active_location_are_short() -> None:
    plan = allocate([Demand(index=0, variant_id=TOWEL, quantity=1, backorder=True)], [])

    assert plan.shortages == (Shortage(0, TOWEL, None, 1, 0),)


LOCATIONS = [UUID(int=100 + number) for number in range(4)]


@given(
    available=st.lists(st.integers(min_value=0, max_value=20), min_size=4, max_size=4),
    priorities=st.lists(st.integers(min_value=-2, max_value=2), min_size=4, max_size=4),
    quantities=st.lists(
        st.tuples(st.integers(min_value=1, max_value=30), st.none() | st.sampled_from(LOCATIONS)),
        min_size=1,
        max_size=6,
    ),
)
def test_a_plan_never_takes_more_than_there_is(
    available: list[int],
    priorities: list[int],
    quantities: list[tuple[int, UUID | None]],
) -> None:
    candidates = [
        Candidate(TOWEL, location, units, priority)
        for location, units, priority in zip(LOCATIONS, available, priorities, strict=True)
    ]
    demands = [
        Demand(index=index, variant_id=TOWEL, quantity=quantity, location_id=location)
        for index, (quantity, location) in enumerate(quantities)
    ]

    plan = allocate(demands, candidates)

    if plan.feasible:
        taken = plan.by_level()
        for candidate in candidates:
            assert taken.get((TOWEL, candidate.location_id), 0) <= candidate.available
        for demand in demands:
            placed = [a for a in plan.allocations if a.index == demand.index]
            assert sum(a.quantity for a in placed) == demand.quantity
            if demand.location_id is not None:
                assert {a.location_id for a in placed} == {demand.location_id}
    else:
        assert sum(demand.quantity for demand in demands) > sum(available) or any(
            demand.location_id is not None for demand in demands
        )
        assert sum(shortage.available for shortage in plan.shortages) <= sum(available)
