"""A customer's requests about their personal data: export it, erase it.

The orders are the order domain's (`order.service.customer_orders`, `erase_customer`); here
they are gathered and, on erasure, the other copies of the customer's data go too: the
stored `Idempotency-Key` responses (sealed, but readable with the tenant's key) that
mention the customer's email or one of their orders are replaced by a 410 problem. Events
and the audit trail never hold personal data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shelfkeeper.auth.principal import Principal
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection
from shelfkeeper.kit import idempotency
from shelfkeeper.order import service as order_service
from shelfkeeper.privacy import service
from shelfkeeper.privacy.schemas import CustomerExport, Erasure


def _normalized(email: str) -> str:
    return email.strip().lower()


def _tenant(principal: Principal) -> str:
    assert principal.tenant_id is not None
    return principal.tenant_id


async def export(
    db: Connection, principal: Principal, *, email: str, settings: Settings
) -> CustomerExport:
    """Every order of the customer (with its customer data, address, lines, payments and
    refunds) and every return of those orders. No such customer: empty lists."""
    orders = await order_service.customer_orders(
        db, principal, email=email, blind_index=order_service.email_index(settings)
    )
    returns = [
        returned
        for order in orders
        for returned in await order_service.list_returns(db, principal, order_id=order.id)
    ]
    return CustomerExport(
        email=_normalized(email),
        generated_at=datetime.now(UTC),
        orders=orders,
        returns=returns,
    )


async def erase(db: Connection, principal: Principal, *, email: str, settings: Settings) -> Erasure:
    """Pseudonymise the customer's orders (see `order.service.erase_customer`) and erase
    the stored responses that mention the customer's email or one of their orders."""
    tenant_id = _tenant(principal)
    erased = await order_service.erase_customer(
        db, principal, email=email, blind_index=order_service.email_index(settings)
    )
    needles = [_normalized(email).encode()] + [str(order.id).encode() for order in erased]
    mentioning: list[str] = []
    async for key, stored in idempotency.stored_responses(db, scope=tenant_id):
        body = await service.IdempotentResponses().open(db, scope=tenant_id, stored=stored)
        if any(needle in body.lower() for needle in needles):
            mentioning.append(key)
    replaced = (
        await idempotency.erase_responses(db, scope=tenant_id, keys=mentioning) if mentioning else 0
    )
    return Erasure(orders=[order.id for order in erased], stored_responses_erased=replaced)
