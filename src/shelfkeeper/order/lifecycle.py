"""The order lifecycle: one explicit table of transitions, pure code (no database).

```
pending ──▶ processed ──▶ shipped ──▶ delivered
   │            │
   └────────────┴──▶ canceled
```

Each transition says what happens to the order's reserved stock (shipping turns the
reservations into deductions, cancelling releases them) and which event it records. Every
other pair of statuses, including a status to itself, is an invalid transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shelfkeeper.event.schemas import EventType
from shelfkeeper.kit import recording
from shelfkeeper.kit.problems import Conflict
from shelfkeeper.observability import metrics


class OrderStatus(StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CANCELED = "canceled"


class StockEffect(StrEnum):
    NONE = "none"
    DEDUCT = "deduct"
    """The reserved units leave: on_hand and reserved both fall (ledger reason `sale`)."""
    RELEASE = "release"
    """The reserved units are given back."""


@dataclass(frozen=True)
class Transition:
    source: OrderStatus
    target: OrderStatus
    stock: StockEffect
    event: EventType


TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        OrderStatus.PENDING, OrderStatus.PROCESSED, StockEffect.NONE, EventType.ORDER_PROCESSED
    ),
    Transition(
        OrderStatus.PENDING, OrderStatus.CANCELED, StockEffect.RELEASE, EventType.ORDER_CANCELLED
    ),
    Transition(
        OrderStatus.PROCESSED, OrderStatus.SHIPPED, StockEffect.DEDUCT, EventType.ORDER_SHIPPED
    ),
    Transition(
        OrderStatus.PROCESSED,
        OrderStatus.CANCELED,
        StockEffect.RELEASE,
        EventType.ORDER_CANCELLED,
    ),
    Transition(
        OrderStatus.SHIPPED, OrderStatus.DELIVERED, StockEffect.NONE, EventType.ORDER_DELIVERED
    ),
)
"""Every allowed transition; nothing else is."""

EDITABLE: frozenset[OrderStatus] = frozenset({OrderStatus.PENDING, OrderStatus.PROCESSED})
"""Statuses in which lines and details may change (the stock is still only reserved)."""

_BY_PAIR = {(transition.source, transition.target): transition for transition in TRANSITIONS}


class InvalidTransition(Conflict):
    slug = "invalid-transition"
    title = "The order cannot move to that status"


def allowed_from(status: OrderStatus) -> list[OrderStatus]:
    """The statuses an order in `status` may move to, in lifecycle order."""
    order = list(OrderStatus)
    return sorted(
        (transition.target for transition in TRANSITIONS if transition.source == status),
        key=order.index,
    )


def transition(source: OrderStatus, target: OrderStatus) -> Transition:
    """The transition from `source` to `target`.

    Raises InvalidTransition (409), naming the statuses `source` may move to (`allowed`).
    """
    found = _BY_PAIR.get((source, target))
    if found is not None:
        return found
    allowed = allowed_from(source)
    if allowed:
        detail = f"An order that is {source} can move to {', '.join(allowed)}; not to {target}."
    else:
        detail = f"An order that is {source} cannot change status any more."
    raise InvalidTransition(
        detail, current=source.value, requested=target.value, allowed=[s.value for s in allowed]
    )


def record_transition(order_id: object, source: OrderStatus, target: OrderStatus) -> None:
    """Describe a transition made in the current transaction: for its audit entry, and for
    the `order_transitions_total` metric once the transaction has committed."""
    recording.record_change(
        "order",
        order_id,
        "change_status",
        before={"status": source.value},
        after={"status": target.value},
    )
    recording.after_commit(lambda: metrics.count_order_transition(source.value, target.value))
