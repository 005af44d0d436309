"""`shelfkeeper demo`: a demo tenant with locations, items, stock and orders.

Everything goes through the domain services, as the API would (with the `system` principal),
so the demo data has its movements, events, order numbers and history like any other, and
`shelfkeeper verify` finds no drift in it. The tenant and its data are created in one
transaction: all of it, or nothing (an existing tenant is refused, and left as it was).

Audited in that transaction: the tenant's creation and the demo's summary (`load_demo`)
are described for the platform trail of the caller's unit of work (`audit.service.
platform_transaction` on the command line), and the changes the domain services describe
go to the new tenant's own trail, both as the given `origin`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from shelfkeeper.audit import service as audit_service
from shelfkeeper.auth.principal import Principal
from shelfkeeper.db.database import Connection, bind_tenant
from shelfkeeper.inventory import service as inventory_service
from shelfkeeper.inventory.schemas import ItemCreate, StockAdjustment
from shelfkeeper.kit import recording
from shelfkeeper.location import service as location_service
from shelfkeeper.location.schemas import LocationCreate
from shelfkeeper.order import service as order_service
from shelfkeeper.order.blind_index import BlindIndex
from shelfkeeper.order.schemas import (
    OrderCreate,
    OrderUpdate,
    PaymentCreate,
    RefundCreate,
    ReturnCreate,
    ReturnUpdate,
)
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate

DEFAULT_TENANT = "demo"
DEFAULT_NAME = "Demo Home Goods"

LOCATIONS: list[dict[str, Any]] = [
    {
        "code": "AMS",
        "name": "Amsterdam warehouse",
        "kind": "warehouse",
        "priority": 0,
        "address": {"line1": "1 Dock Road", "city": "Amsterdam", "country": "NL"},
    },
    {
        "code": "RTM",
        "name": "Rotterdam warehouse",
        "kind": "warehouse",
        "priority": 0,
        "address": {"line1": "12 Maasboulevard", "city": "Rotterdam", "country": "NL"},
    },
    {
        "code": "UTR",
        "name": "Utrecht store",
        "kind": "store",
        "priority": 5,
        "address": {"line1": "3 Oudegracht", "city": "Utrecht", "country": "NL"},
    },
]

ITEMS: list[dict[str, Any]] = [
    {
        "sku": "TOWEL",
        "name": "Bath towel",
        "description": "Organic cotton, 600 g/m².",
        "attributes": {"material": "cotton"},
        "variants": [
            {"sku": "TOWEL-W-L", "attributes": {"color": "white", "size": "L"}, "price": "12.50"},
            {"sku": "TOWEL-W-M", "attributes": {"color": "white", "size": "M"}, "price": "9.50"},
            {"sku": "TOWEL-G-L", "attributes": {"color": "grey", "size": "L"}, "price": "12.50"},
        ],
    },
    {"sku": "MUG", "name": "Stoneware mug", "price": "6.00"},
    {"sku": "CANDLE", "name": "Soy candle", "price": "9.95", "low_stock_threshold": 5},
    {
        "sku": "SHEET",
        "name": "Linen sheet set",
        "variants": [
            {"sku": "SHEET-DOUBLE", "attributes": {"size": "double"}, "price": "89.00"},
            {"sku": "SHEET-KING", "attributes": {"size": "king"}, "price": "109.00"},
        ],
    },
    {"sku": "LAMP", "name": "Desk lamp", "price": "45.00"},
    {"sku": "POT", "name": "Ceramic plant pot", "price": "14.00"},
]

STOCK: dict[str, dict[str, int]] = {
    "TOWEL-W-L": {"AMS": 40, "RTM": 20, "UTR": 6},
    "TOWEL-W-M": {"AMS": 30, "UTR": 4},
    "TOWEL-G-L": {"RTM": 15},
    "MUG": {"AMS": 60, "UTR": 12},
    "CANDLE": {"AMS": 9},
    "SHEET-DOUBLE": {"RTM": 8},
    "SHEET-KING": {"RTM": 5},
    "LAMP": {"AMS": 10, "UTR": 2},
    "POT": {"RTM": 25},
}
"""Units received per SKU and location code."""


@dataclass(frozen=True)
class DemoOrder:
    customer: dict[str, str]
    lines: list[dict[str, Any]]
    status: str
    paid: bool = False
    returned: bool = False


ORDERS: list[DemoOrder] = [
    DemoOrder(
        customer={"email": "ada@example.com", "name": "Ada Lovelace"},
        lines=[{"sku": "TOWEL-W-L", "quantity": 2}, {"sku": "MUG", "quantity": 4}],
        status="pending",
    ),
    DemoOrder(
        customer={"email": "grace@example.com", "name": "Grace Hopper"},
        lines=[{"sku": "CANDLE", "quantity": 5}],
        status="processed",
        paid=True,
    ),
    DemoOrder(
        customer={"email": "alan@example.com", "name": "Alan Turing"},
        lines=[{"sku": "SHEET-KING", "quantity": 1}, {"sku": "TOWEL-G-L", "quantity": 2}],
        status="shipped",
        paid=True,
    ),
    DemoOrder(
        customer={"email": "katherine@example.com", "name": "Katherine Johnson"},
        lines=[{"sku": "LAMP", "quantity": 1}, {"sku": "MUG", "quantity": 2}],
        status="delivered",
        paid=True,
    ),
    DemoOrder(
        customer={"email": "edsger@example.com", "name": "Edsger Dijkstra"},
        lines=[{"sku": "POT", "quantity": 3}],
        status="canceled",
    ),
    DemoOrder(
        customer={"email": "barbara@example.com", "name": "Barbara Liskov"},
        lines=[{"sku": "TOWEL-W-M", "quantity": 2}],
        status="delivered",
        paid=True,
        returned=True,
    ),
]

PATHS = {
    "pending": (),
    "processed": ("processed",),
    "shipped": ("processed", "shipped"),
    "delivered": ("processed", "shipped", "delivered"),
    "canceled": ("canceled",),
}


@dataclass(frozen=True)
class Loaded:
    """What the demo created."""

    tenant_id: str
    locations: int
    items: int
    units: int
    orders: dict[str, int]

    def summary(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "locations": self.locations,
            "items": self.items,
            "units_received": self.units,
            "orders": self.orders,
        }


async def load(
    db: Connection,
    *,
    tenant_id: str,
    name: str,
    blind_index: BlindIndex,
    origin: audit_service.Origin = audit_service.SYSTEM,
) -> Loaded:
    """Create the tenant `tenant_id` and its demo data in the caller's transaction (bound to
    the platform scope; it is bound to the new tenant from then on). The data's changes are
    written to the tenant's trail as `origin`; the creation and a `load_demo` summary are
    described for the caller's (platform) unit of work. Raises TenantExists (409) when the
    tenant exists, ValidationError for an invalid id or name."""
    await tenant_service.create(db, body=TenantCreate(id=tenant_id, name=name))
    await bind_tenant(db, tenant_id)
    with recording.unit_of_work() as tenant_work:
        loaded = await _load_data(db, tenant_id=tenant_id, blind_index=blind_index)
        await audit_service.write(
            db, tenant_id=tenant_id, origin=origin, changes=tenant_work.changes
        )
    for callback in tenant_work.callbacks:  # run when the caller's transaction commits
        recording.after_commit(callback)
    recording.record_change(tenant_service.ENTITY, tenant_id, "load_demo", after=loaded.summary())
    return loaded


async def _load_data(db: Connection, *, tenant_id: str, blind_index: BlindIndex) -> Loaded:
    principal = Principal.system(tenant_id)

    places: dict[str, UUID] = {}
    for values in LOCATIONS:
        location = await location_service.create(
            db, principal, body=LocationCreate.model_validate(values)
        )
        places[location.code] = location.id

    items: dict[str, UUID] = {}
    for values in ITEMS:
        item = await inventory_service.create_item(
            db, principal, body=ItemCreate.model_validate(values)
        )
        for variant in item.variants:
            items[variant.sku] = item.id

    units = 0
    for sku, quantities in STOCK.items():
        for code, quantity in quantities.items():
            await inventory_service.adjust(
                db,
                principal,
                item_id=items[sku],
                body=StockAdjustment.model_validate(
                    {
                        "operation": "add",
                        "quantity": quantity,
                        "location_id": places[code],
                        "sku": sku,
                        "reason": "received",
                        "reference": "demo:opening-stock",
                    }
                ),
            )
            units += quantity

    orders: dict[str, int] = {}
    for number, demo in enumerate(ORDERS, start=1):
        await _order(db, principal, demo=demo, number=number, blind_index=blind_index)
        orders[demo.status] = orders.get(demo.status, 0) + 1
    return Loaded(
        tenant_id=tenant_id,
        locations=len(places),
        items=len(ITEMS),
        units=units,
        orders=orders,
    )


async def _order(
    db: Connection, principal: Principal, *, demo: DemoOrder, number: int, blind_index: BlindIndex
) -> None:
    order = await order_service.create(
        db,
        principal,
        body=OrderCreate.model_validate(
            {
                "customer": demo.customer,
                "currency": "EUR",
                "lines": demo.lines,
                "metadata": {"channel": "demo"},
                "shipping_address": {"name": demo.customer["name"], "country": "NL"},
            }
        ),
        blind_index=blind_index,
    )
    if demo.paid:
        order = await order_service.record_payment(
            db,
            principal,
            order_id=order.id,
            body=PaymentCreate.model_validate(
                {"amount": _euros(order.total), "provider": "manual", "reference": f"demo:{number}"}
            ),
        )
    for status in PATHS[demo.status]:
        change: dict[str, Any] = {"status": status}
        if status == "shipped":
            change["shipment"] = {"carrier": "PostNL", "tracking_number": f"3SDEMO{number:08d}"}
        order = await order_service.update(
            db,
            principal,
            order_id=order.id,
            body=OrderUpdate.model_validate(change),
            expected_version=None,
        )
    if demo.returned:
        line = order.lines[0]
        returned = await order_service.create_return(
            db,
            principal,
            order_id=order.id,
            body=ReturnCreate.model_validate(
                {
                    "lines": [
                        {
                            "line_id": line.id,
                            "quantity": 1,
                            "reason": "too small",
                            "restock": True,
                        }
                    ]
                }
            ),
        )
        await order_service.update_return(
            db,
            principal,
            order_id=order.id,
            return_id=returned.id,
            body=ReturnUpdate.model_validate({"status": "received"}),
        )
        await order_service.refund(
            db,
            principal,
            order_id=order.id,
            body=RefundCreate.model_validate(
                {"amount": _euros(returned.value), "return_id": returned.id, "reason": "returned"}
            ),
        )


def _euros(amount: Decimal) -> str:
    return str(amount.quantize(Decimal("0.01")))
