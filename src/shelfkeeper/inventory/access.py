"""Where a principal may change stock.

A token may carry a `location_ids` claim (a store clerk's): its holder changes stock only at
those locations, and is refused (403 `forbidden`) anywhere else before anything is written.
Reading stays unrestricted. Every service path that changes a level asks here first: stock
adjustments and batches, transfers (both ends), reservations and their release or
extension, thresholds, and the order helpers (reserving, releasing, shipping).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from shelfkeeper.auth.principal import Principal
from shelfkeeper.kit.problems import Forbidden


def ensure_may_change_stock(principal: Principal, location_ids: Iterable[UUID]) -> None:
    """Raises Forbidden (403, listing them as `location_ids`) when any of the locations is
    not one where the principal may change stock."""
    outside = sorted(
        {
            location_id
            for location_id in location_ids
            if not principal.may_change_stock_at(location_id)
        },
        key=str,
    )
    if outside:
        raise Forbidden(
            "This credential may change stock only at its own locations.",
            location_ids=[str(location_id) for location_id in outside],
        )


def restricted(principal: Principal) -> bool:
    """Whether the principal may change stock at some locations only."""
    return principal.location_ids is not None
