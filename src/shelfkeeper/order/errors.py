"""Order problems, each with its HTTP status and slug (`InvalidTransition` lives with the
lifecycle table that raises it)."""

from __future__ import annotations

from shelfkeeper.kit.problems import Conflict, NotFound, Problem


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


class ReturnNotFound(NotFound):
    title = "Return not found"


class OrderNotShipped(Conflict):
    slug = "order-not-shipped"
    title = "Only a shipped or delivered order can be returned"


class ReturnExceedsShipped(Conflict):
    slug = "return-exceeds-shipped"
    title = "More units than were shipped and not yet returned"


class ReturnClosed(Conflict):
    slug = "return-closed"
    title = "The return was already received or rejected"


class RefundExceedsPaid(Conflict):
    slug = "refund-exceeds-paid"
    title = "The refund is more than was paid and not yet refunded"


class ProviderNotFound(NotFound):
    title = "No such integration provider"


class InvalidSignature(Problem):
    status = 401
    slug = "invalid-signature"
    title = "The callback's signature is missing, wrong or stale"
