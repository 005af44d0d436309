"""Inventory endpoints: `/inventory` (items, variants, stock, movements) and `/stock`.

Viewers read; clerks edit items and change stock; only admins delete items and variants.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response

from shelfkeeper.audit import service as audit_service
from shelfkeeper.auth.dependencies import (
    TENANT_SCOPED_PROBLEMS,
    Deleter,
    Operator,
    Reader,
    TenantSession,
)
from shelfkeeper.inventory import service
from shelfkeeper.inventory.coalescer import ReservationCoalescer
from shelfkeeper.inventory.errors import (
    BackordersOutstanding,
    BelowReserved,
    DuplicateSku,
    InsufficientReserved,
    InsufficientStock,
    ItemInUse,
    ItemNotFound,
    LastVariant,
    LevelNotFound,
    VariantNotFound,
    VersionConflict,
)
from shelfkeeper.inventory.schemas import (
    AdjustmentResult,
    AsOf,
    BatchAdjustments,
    BatchResult,
    Item,
    ItemCreate,
    ItemStock,
    ItemUpdate,
    LevelThresholdUpdate,
    LowStockStatus,
    Movement,
    StockAdjustment,
    Transfer,
    TransferCreate,
    Variant,
    VariantCreate,
    VariantUpdate,
)
from shelfkeeper.kit.conditional import check_not_modified, expected_version, set_etag
from shelfkeeper.kit.idempotency import HEADER as IDEMPOTENCY_HEADER
from shelfkeeper.kit.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReuse
from shelfkeeper.kit.pagination import DEFAULT_LIMIT, CursorParam, LimitParam, Page
from shelfkeeper.kit.problems import VersionMismatch, problem_responses
from shelfkeeper.kit.routing import TransactionalRoute

router = APIRouter(
    prefix="/{tenant_id}", route_class=TransactionalRoute, responses=TENANT_SCOPED_PROBLEMS
)

IfMatch = Annotated[str | None, Header(description='Current ETag (`"<version>"`); stale → 412.')]
IfNoneMatch = Annotated[str | None, Header()]
WRITE_PROBLEMS = (IdempotencyKeyInFlight, IdempotencyKeyReuse)
STOCK_REFUSALS = (
    InsufficientStock,
    InsufficientReserved,
    BelowReserved,
    VersionConflict,
    *WRITE_PROBLEMS,
)


@router.post(
    "/inventory",
    status_code=201,
    tags=["Inventory"],
    summary="Create an item",
    responses=problem_responses(DuplicateSku, *WRITE_PROBLEMS),
)
async def create_item(
    body: ItemCreate, principal: Operator, db: TenantSession, response: Response
) -> Item:
    item = await service.create_item(db, principal, body=body)
    set_etag(response, item.version)
    response.headers["Location"] = f"/api/v1/{principal.tenant_id}/inventory/{item.id}"
    return item


@router.get("/inventory", tags=["Inventory"], summary="List items")
async def list_items(
    principal: Reader,
    db: TenantSession,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[
        str, Query(description="`name`, `sku`, `created_at`, `updated_at`; `-` descends.")
    ] = "created_at",
    sku: Annotated[str | None, Query(max_length=64, description="Item or variant SKU.")] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Name contains.")
    ] = None,
    location_id: Annotated[UUID | None, Query(description="Items stocked there.")] = None,
    low_stock: Annotated[
        bool | None, Query(description="Items with a level at or below its threshold.")
    ] = None,
) -> Page[Item]:
    return await service.list_items(
        db,
        principal,
        sort=sort,
        cursor=cursor,
        limit=limit,
        sku=sku,
        query=q,
        location_id=location_id,
        low_stock=low_stock,
    )


# Before `/inventory/{item_id}`, which would otherwise take `alerts` for an item id.
@router.get(
    "/inventory/alerts",
    tags=["Stock"],
    summary="Levels at or below their low-stock threshold",
    description="Each level whose available stock is at or below its threshold: the "
    "level's own, else its item's, else the tenant's default `low_stock_threshold` (a level "
    "with none never alerts). Ordered by the variant's SKU, then the location. `since` is "
    "when the level last crossed its threshold downward (its `InventoryLowStock` event).",
)
async def list_alerts(
    principal: Reader,
    db: TenantSession,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[str, Query(description="`sku` or `-sku` (the variant's).")] = "sku",
    location_id: Annotated[UUID | None, Query(description="Levels at this location.")] = None,
) -> Page[LowStockStatus]:
    return await service.list_alerts(
        db, principal, sort=sort, cursor=cursor, limit=limit, location_id=location_id
    )


@router.get(
    "/inventory/{item_id}",
    tags=["Inventory"],
    summary="Read an item with its variants and stock per location",
    description="The `ETag` is the item's `version` (its details), for `If-Match` on PUT. "
    "The body also carries live stock, which changes without that version, so this endpoint "
    "never answers 304 to `If-None-Match`.",
    responses=problem_responses(ItemNotFound),
)
async def get_item(item_id: UUID, principal: Reader, db: TenantSession, response: Response) -> Item:
    item = await service.get_item(db, principal, item_id=item_id)
    set_etag(response, item.version)
    return item


@router.put(
    "/inventory/{item_id}",
    tags=["Inventory"],
    summary="Update an item's details",
    description="Fields not sent are kept (as in Shopify's PUT). Stock changes go through "
    "`PATCH .../stock`. Turning `allow_backorder` off while a level has more reserved than "
    "on hand → 409 `backorders-outstanding`.",
    responses=problem_responses(ItemNotFound, VersionMismatch, BackordersOutstanding),
)
async def update_item(
    item_id: UUID,
    body: ItemUpdate,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Item:
    item = await service.update_item(
        db, principal, item_id=item_id, body=body, expected_version=expected_version(if_match)
    )
    set_etag(response, item.version)
    return item


@router.delete(
    "/inventory/{item_id}",
    status_code=204,
    tags=["Inventory"],
    summary="Delete an item",
    responses=problem_responses(ItemNotFound, ItemInUse, VersionMismatch),
)
async def delete_item(
    item_id: UUID, principal: Deleter, db: TenantSession, if_match: IfMatch = None
) -> None:
    await service.delete_item(
        db, principal, item_id=item_id, expected_version=expected_version(if_match)
    )


@router.patch(
    "/inventory/{item_id}/stock",
    tags=["Stock"],
    summary="Atomically adjust stock at one location",
    responses=problem_responses(ItemNotFound, *STOCK_REFUSALS),
)
async def adjust_stock(
    item_id: UUID, body: StockAdjustment, principal: Operator, db: TenantSession, request: Request
) -> AdjustmentResult:
    # The fast path answers from a round that commits before this request's transaction
    # does; a stored idempotent response would commit apart from the change, so a request
    # with an Idempotency-Key takes the plain path, where both commit together.
    coalescer: ReservationCoalescer | None = (
        None
        if IDEMPOTENCY_HEADER in request.headers
        else getattr(request.app.state, "coalescer", None)
    )
    return await service.adjust(
        db,
        principal,
        item_id=item_id,
        body=body,
        coalescer=coalescer,
        origin=audit_service.Origin.of(
            principal,
            request_id=getattr(request.state, "request_id", None),
            client=request.client.host if request.client is not None else None,
        ),
    )


@router.get(
    "/inventory/{item_id}/stock",
    tags=["Stock"],
    summary="The item's stock per level, now or at a past time",
    description="Without `as_of`, the levels as they are. With `as_of` (RFC 3339 with a "
    "time zone, not in the future), what each level held then, from the ledger: the state "
    "after its last movement at or before `as_of`; a level without a movement by then is "
    "left out.",
    responses=problem_responses(ItemNotFound),
)
async def get_stock(
    item_id: UUID, principal: Reader, db: TenantSession, as_of: AsOf | None = None
) -> ItemStock:
    return await service.item_stock(db, principal, item_id=item_id, as_of=as_of)


@router.patch(
    "/inventory/{item_id}/levels/{location_id}",
    tags=["Stock"],
    summary="Set a level's low-stock threshold",
    description="`low_stock_threshold` null falls back to the item's, then the tenant's "
    "default. A threshold that puts the level at or below it records `InventoryLowStock` "
    "(a crossing); the level's `version` does not change, and `If-Match` must name it. "
    "A level exists once stock was recorded at the location (404 before).",
    responses=problem_responses(ItemNotFound, LevelNotFound, VersionMismatch, *WRITE_PROBLEMS),
)
async def set_level_threshold(
    item_id: UUID,
    location_id: UUID,
    body: LevelThresholdUpdate,
    principal: Operator,
    db: TenantSession,
    if_match: IfMatch = None,
) -> LowStockStatus:
    return await service.set_level_threshold(
        db,
        principal,
        item_id=item_id,
        location_id=location_id,
        body=body,
        expected_version=expected_version(if_match),
    )


@router.get(
    "/inventory/{item_id}/movements",
    tags=["Stock"],
    summary="The item's stock ledger, newest first",
    responses=problem_responses(ItemNotFound),
)
async def list_movements(
    item_id: UUID,
    principal: Reader,
    db: TenantSession,
    limit: LimitParam = DEFAULT_LIMIT,
    cursor: CursorParam = None,
    sort: Annotated[str, Query(description="`created_at` or `-created_at`.")] = "-created_at",
    location_id: UUID | None = None,
    variant_id: UUID | None = None,
) -> Page[Movement]:
    return await service.list_movements(
        db,
        principal,
        item_id=item_id,
        cursor=cursor,
        limit=limit,
        sort=sort,
        location_id=location_id,
        variant_id=variant_id,
    )


@router.post(
    "/stock/adjustments",
    tags=["Stock"],
    summary="Apply several adjustments, all or nothing",
    description="A refused batch is one 409 whose `lines` list every refused line "
    "(`index`, `type`, `detail` and the line's own fields such as `available`); an unknown "
    "item, variant or location is a 422 naming each such line. Nothing is changed then.",
    responses=problem_responses(*STOCK_REFUSALS),
)
async def adjust_batch(
    body: BatchAdjustments, principal: Operator, db: TenantSession
) -> BatchResult:
    return await service.adjust_batch(db, principal, body=body)


@router.post(
    "/stock/transfers",
    status_code=201,
    tags=["Stock"],
    summary="Move available stock between locations",
    responses=problem_responses(InsufficientStock, *WRITE_PROBLEMS),
)
async def create_transfer(body: TransferCreate, principal: Operator, db: TenantSession) -> Transfer:
    return await service.transfer(db, principal, body=body)


@router.get(
    "/inventory/{item_id}/variants",
    tags=["Variants"],
    summary="List an item's variants",
    responses=problem_responses(ItemNotFound),
)
async def list_variants(item_id: UUID, principal: Reader, db: TenantSession) -> Page[Variant]:
    return Page(data=await service.list_variants(db, principal, item_id=item_id), next_cursor=None)


@router.post(
    "/inventory/{item_id}/variants",
    status_code=201,
    tags=["Variants"],
    summary="Add a variant",
    responses=problem_responses(ItemNotFound, DuplicateSku, *WRITE_PROBLEMS),
)
async def create_variant(
    item_id: UUID, body: VariantCreate, principal: Operator, db: TenantSession, response: Response
) -> Variant:
    variant = await service.create_variant(db, principal, item_id=item_id, body=body)
    set_etag(response, variant.version)
    return variant


@router.get(
    "/inventory/{item_id}/variants/{variant_id}",
    tags=["Variants"],
    summary="Read a variant",
    responses={304: {"description": "Not modified"}, **problem_responses(VariantNotFound)},
)
async def get_variant(
    item_id: UUID,
    variant_id: UUID,
    principal: Reader,
    db: TenantSession,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> Variant:
    variant = await service.get_variant(db, principal, item_id=item_id, variant_id=variant_id)
    check_not_modified(if_none_match, variant.version)
    set_etag(response, variant.version)
    return variant


@router.patch(
    "/inventory/{item_id}/variants/{variant_id}",
    tags=["Variants"],
    summary="Update a variant",
    responses=problem_responses(VariantNotFound, DuplicateSku, VersionMismatch, *WRITE_PROBLEMS),
)
async def update_variant(
    item_id: UUID,
    variant_id: UUID,
    body: VariantUpdate,
    principal: Operator,
    db: TenantSession,
    response: Response,
    if_match: IfMatch = None,
) -> Variant:
    variant = await service.update_variant(
        db,
        principal,
        item_id=item_id,
        variant_id=variant_id,
        body=body,
        expected_version=expected_version(if_match),
    )
    set_etag(response, variant.version)
    return variant


@router.delete(
    "/inventory/{item_id}/variants/{variant_id}",
    status_code=204,
    tags=["Variants"],
    summary="Delete a variant",
    responses=problem_responses(VariantNotFound, LastVariant, ItemInUse),
)
async def delete_variant(
    item_id: UUID, variant_id: UUID, principal: Deleter, db: TenantSession
) -> None:
    await service.delete_variant(db, principal, item_id=item_id, variant_id=variant_id)
