"""Order problems, each with its HTTP status and slug (`InvalidTransition` lives with the
lifecycle table that raises it)."""

from __future__ import annotations

from shelfkeeper.kit.problems import Conflict, NotFound


class OrderNotFound(NotFound):
    title = "Order not found"


class OrderLineNotFound(NotFound):
    title = "Order line not found"


class OrderLocked(Conflict):
    slug = "order-locked"
    title = "The order can no longer change this way"


class OrderEmpty(Conflict):
    slug = "order-empty"
    title = "An order keeps at least one line"


class PaymentExceedsTotal(Conflict):
    slug = "payment-exceeds-total"
    title = "The payment is more than the order still owes"


class TotalBelowPaid(Conflict):
    slug = "total-below-paid"
    title = "The change would make the total less than what was paid"


class ReservationMismatch(Conflict):
    slug = "reservation-mismatch"
    title = "The order's lines do not match the reservation's units"
