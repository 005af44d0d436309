"""The order state machine, without a database: every (from, to) pair."""

from __future__ import annotations

import itertools

import pytest

from shelfkeeper.event.schemas import EventType
from shelfkeeper.order.lifecycle import (
    EDITABLE,
    TRANSITIONS,
    InvalidTransition,
    OrderStatus,
    StockEffect,
    allowed_from,
    transition,
)

P, R, S, D, C = (
    OrderStatus.PENDING,
    OrderStatus.PROCESSED,
    OrderStatus.SHIPPED,
    OrderStatus.DELIVERED,
    OrderStatus.CANCELED,
)
EXPECTED = {
    (P, R): (StockEffect.NONE, EventType.ORDER_PROCESSED),
    (P, C): (StockEffect.RELEASE, EventType.ORDER_CANCELLED),
    (R, S): (StockEffect.DEDUCT, EventType.ORDER_SHIPPED),
    (R, C): (StockEffect.RELEASE, EventType.ORDER_CANCELLED),
    (S, D): (StockEffect.NONE, EventType.ORDER_DELIVERED),
}
ALL_PAIRS = list(itertools.product(OrderStatus, OrderStatus))


def test_the_table_holds_exactly_the_contracts_transitions() -> None:
    assert {(t.source, t.target): (t.stock, t.event) for t in TRANSITIONS} == EXPECTED
    assert len(TRANSITIONS) == len(EXPECTED)


@pytest.mark.parametrize(("source", "target"), [pair for pair in ALL_PAIRS if pair in EXPECTED])
def test_an_allowed_transition_says_what_happens_to_stock_and_which_event(
    source: OrderStatus, target: OrderStatus
) -> None:
    step = transition(source, target)

    assert (step.source, step.target) == (source, target)
    assert (step.stock, step.event) == EXPECTED[(source, target)]


@pytest.mark.parametrize(("source", "target"), [pair for pair in ALL_PAIRS if pair not in EXPECTED])
def test_every_other_pair_is_an_invalid_transition_naming_the_allowed_ones(
    source: OrderStatus, target: OrderStatus
) -> None:
    with pytest.raises(InvalidTransition) as raised:
        transition(source, target)

    problem = raised.value
    assert (problem.status, problem.slug) == (409, "invalid-transition")
    allowed = [t for (s, t) in EXPECTED if s == source]
    assert problem.extensions == {
        "current": source.value,
        "requested": target.value,
        "allowed": [status.value for status in allowed],
    }
    assert problem.detail is not None
    for status in allowed:
        assert status.value in problem.detail


def test_allowed_statuses_come_in_lifecycle_order() -> None:
    assert allowed_from(P) == [R, C]
    assert allowed_from(R) == [S, C]
    assert allowed_from(S) == [D]
    assert allowed_from(D) == []
    assert allowed_from(C) == []


def test_final_statuses_say_so() -> None:
    with pytest.raises(InvalidTransition) as raised:
        transition(D, C)

    assert raised.value.detail == "An order that is delivered cannot change status any more."


def test_lines_and_details_change_only_before_shipping() -> None:
    assert EDITABLE == {P, R}
