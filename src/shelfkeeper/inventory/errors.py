"""Inventory problems, each with its HTTP status and contract slug."""

from __future__ import annotations

from shelfkeeper.kit.problems import Conflict, NotFound


class ItemNotFound(NotFound):
    title = "Item not found"


class VariantNotFound(NotFound):
    title = "Variant not found"


class LevelNotFound(NotFound):
    title = "Stock level not found"


class DuplicateSku(Conflict):
    slug = "duplicate-sku"
    title = "SKU already in use in this tenant"


class ItemInUse(Conflict):
    slug = "item-in-use"
    title = "Item has reserved stock"


class BackordersOutstanding(Conflict):
    slug = "backorders-outstanding"
    title = "More stock is reserved than on hand"


class LastVariant(Conflict):
    slug = "last-variant"
    title = "An item keeps at least one variant"


class InsufficientStock(Conflict):
    slug = "insufficient-stock"
    title = "Not enough stock available"


class InsufficientReserved(Conflict):
    slug = "insufficient-reserved"
    title = "Not that much stock is reserved"


class BelowReserved(Conflict):
    slug = "below-reserved"
    title = "Stock count below what is reserved"


class VersionConflict(Conflict):
    slug = "version-conflict"
    title = "Stock level changed since you read it"


class ReservationNotFound(NotFound):
    title = "Reservation not found"


class ReservationNotHeld(Conflict):
    slug = "reservation-not-held"
    title = "The reservation is no longer held"
