"""Payment and shipping integration points: provider interfaces and the built-in `manual`
providers.

A provider stands for an outside service (a card processor, a carrier). The `manual`
providers stand for people: a clerk who took cash or a bank transfer, or who booked a parcel
and typed in its tracking number. They make no network call, so the service calls them
inside the request's transaction (`local` is True). A provider that talks to a network
must never be called while a database transaction is open (a slow or hung provider would
hold row locks and a pooled connection): its call happens before the transaction that
records the outcome, or its outcome arrives later through a signed callback
(`verify_callback`) handled in a transaction of its own. See docs/orders.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol


class PaymentOutcome(StrEnum):
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    FAILED = "failed"


@dataclass(frozen=True)
class PaymentResult:
    outcome: PaymentOutcome
    reference: str | None
    """The provider's own id of the payment (a charge id), if it has one."""


class PaymentProvider(Protocol):
    """A way of taking money for an order."""

    name: str
    local: bool
    """True when calling it makes no network call (safe inside a transaction)."""

    async def authorize(
        self, *, amount: Decimal, currency: str, reference: str | None
    ) -> PaymentResult:
        """Reserve `amount` on the customer's means of payment, without taking it yet."""
        ...

    async def capture(
        self, *, amount: Decimal, currency: str, reference: str | None
    ) -> PaymentResult:
        """Take `amount` (after an authorization named by `reference`, or at once)."""
        ...

    async def refund(
        self, *, amount: Decimal, currency: str, reference: str | None
    ) -> PaymentResult:
        """Give `amount` of a captured payment (`reference`) back."""
        ...

    def verify_callback(self, *, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether an inbound callback really comes from the provider (its signature)."""
        ...


@dataclass(frozen=True)
class ShipmentResult:
    carrier: str
    tracking_number: str


class ShippingProvider(Protocol):
    """A way of sending an order's parcel."""

    name: str
    local: bool

    async def create_shipment(
        self, *, order_id: str, carrier: str, tracking_number: str
    ) -> ShipmentResult:
        """Book the shipment (or record one booked elsewhere); returns its carrier and
        tracking number as the provider knows them."""
        ...

    def verify_callback(self, *, headers: Mapping[str, str], body: bytes) -> bool:
        """Whether an inbound tracking callback really comes from the provider."""
        ...


class ManualPaymentProvider:
    """Money taken outside Shelfkeeper (cash, bank transfer): recording it is capturing it."""

    name = "manual"
    local = True

    async def authorize(
        self, *, amount: Decimal, currency: str, reference: str | None
    ) -> PaymentResult:
        return PaymentResult(PaymentOutcome.AUTHORIZED, reference)

    async def capture(
        self, *, amount: Decimal, currency: str, reference: str | None
    ) -> PaymentResult:
        return PaymentResult(PaymentOutcome.CAPTURED, reference)

    async def refund(
        self, *, amount: Decimal, currency: str, reference: str | None
    ) -> PaymentResult:
        return PaymentResult(PaymentOutcome.REFUNDED, reference)

    def verify_callback(self, *, headers: Mapping[str, str], body: bytes) -> bool:
        return False  # nobody calls back about a manual payment


class ManualShippingProvider:
    """A parcel booked by hand: the clerk gives the carrier and the tracking number."""

    name = "manual"
    local = True

    async def create_shipment(
        self, *, order_id: str, carrier: str, tracking_number: str
    ) -> ShipmentResult:
        return ShipmentResult(carrier=carrier, tracking_number=tracking_number)

    def verify_callback(self, *, headers: Mapping[str, str], body: bytes) -> bool:
        return False


PAYMENT_PROVIDERS: dict[str, PaymentProvider] = {"manual": ManualPaymentProvider()}
SHIPPING_PROVIDERS: dict[str, ShippingProvider] = {"manual": ManualShippingProvider()}


def payment_provider(name: str) -> PaymentProvider | None:
    return PAYMENT_PROVIDERS.get(name)


def shipping_provider(name: str) -> ShippingProvider | None:
    return SHIPPING_PROVIDERS.get(name)
