"""Location rules."""

from __future__ import annotations

from uuid import UUID

from shelfkeeper.auth.principal import Principal
from shelfkeeper.db.database import Connection, Record
from shelfkeeper.kit import recording
from shelfkeeper.kit.pagination import TEXT_FIELD, TIMESTAMP_FIELD, Page, SortField, keyset, page_of
from shelfkeeper.kit.problems import Conflict, NotFound, VersionMismatch
from shelfkeeper.location import repository
from shelfkeeper.location.schemas import Address, Location, LocationCreate, LocationUpdate

SORT_FIELDS = {
    "created_at": SortField("created_at", TIMESTAMP_FIELD),
    "updated_at": SortField("updated_at", TIMESTAMP_FIELD),
    "code": SortField("code", TEXT_FIELD),
    "name": SortField("name", TEXT_FIELD),
}


class LocationNotFound(NotFound):
    title = "Location not found"


class DuplicateLocationCode(Conflict):
    slug = "duplicate-code"
    title = "Another location has this code"


class LocationNotEmpty(Conflict):
    slug = "location-not-empty"
    title = "Location still holds stock"


def _tenant(principal: Principal) -> str:
    assert principal.tenant_id is not None
    return principal.tenant_id


AUDITED = ("code", "name", "kind", "address", "active", "priority")
"""The fields a location's audit entries describe."""


def _audited(location: Location) -> dict[str, object]:
    return location.model_dump(include=set(AUDITED))


def _location(row: Record) -> Location:
    address = row["address"]
    return Location(
        id=row["id"],
        code=row["code"],
        name=row["name"],
        kind=row["kind"],
        address=Address.model_validate(address) if address is not None else None,
        active=row["active"],
        priority=row["priority"],
        version=row["version"],
        created_by=row["created_by"],
        updated_by=row["updated_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


async def create(db: Connection, principal: Principal, *, body: LocationCreate) -> Location:
    """Create a location. Raises DuplicateLocationCode (409)."""
    values = body.model_dump()
    values["address"] = body.address.model_dump(exclude_none=True) if body.address else None
    try:
        row = await repository.insert(
            db, tenant_id=_tenant(principal), values=values, actor=principal.actor
        )
    except repository.DuplicateCode as error:
        raise DuplicateLocationCode(f"Code `{body.code}` is taken.") from error
    location = _location(row)
    recording.record_change("location", location.id, "create", after=_audited(location))
    return location


async def get(db: Connection, principal: Principal, *, location_id: UUID) -> Location:
    """Raises LocationNotFound (404), also for another tenant's location."""
    row = await repository.get(db, tenant_id=_tenant(principal), location_id=location_id)
    if row is None:
        raise LocationNotFound()
    return _location(row)


async def list_locations(
    db: Connection,
    principal: Principal,
    *,
    sort: str,
    cursor: str | None,
    limit: int,
    kind: str | None = None,
    active: bool | None = None,
) -> Page[Location]:
    page = keyset(sort=sort, fields=SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=4)
    rows = await repository.list_page(
        db, tenant_id=_tenant(principal), keyset=page, kind=kind, active=active
    )
    sort_name = sort.removeprefix("-")
    return page_of(
        [_location(row) for row in rows],
        limit=limit,
        sort=sort,
        sort_value=lambda location: getattr(location, sort_name),
        row_id=lambda location: location.id,
    )


async def update(
    db: Connection,
    principal: Principal,
    *,
    location_id: UUID,
    body: LocationUpdate,
    expected_version: int | None,
) -> Location:
    """Apply a partial update.

    Raises LocationNotFound (404), VersionMismatch (412), DuplicateLocationCode (409).
    """
    current = await repository.get(db, tenant_id=_tenant(principal), location_id=location_id)
    changes = body.changes()
    if "address" in changes:
        changes["address"] = body.address.model_dump(exclude_none=True) if body.address else None
    try:
        row = await repository.update(
            db,
            tenant_id=_tenant(principal),
            location_id=location_id,
            changes=changes,
            expected_version=expected_version,
            actor=principal.actor,
        )
    except repository.DuplicateCode as error:
        raise DuplicateLocationCode(f"Code `{body.code}` is taken.") from error
    if row is None:
        await get(db, principal, location_id=location_id)
        raise VersionMismatch("The location has changed since you read it.")
    location = _location(row)
    if current is not None:
        recording.record_change(
            "location",
            location_id,
            "update",
            before=_audited(_location(current)),
            after=_audited(location),
        )
    return location


async def delete(
    db: Connection, principal: Principal, *, location_id: UUID, expected_version: int | None
) -> None:
    """Raises LocationNotFound (404), VersionMismatch (412), LocationNotEmpty (409)."""
    current = await repository.get(db, tenant_id=_tenant(principal), location_id=location_id)
    try:
        deleted = await repository.delete(
            db,
            tenant_id=_tenant(principal),
            location_id=location_id,
            expected_version=expected_version,
        )
    except repository.StillReferenced as error:
        raise LocationNotEmpty(
            "Stock levels or stock history still refer to this location, so deleting it "
            "would rewrite history. Move its stock away and set `active` to false instead."
        ) from error
    if not deleted:
        await get(db, principal, location_id=location_id)
        raise VersionMismatch("The location has changed since you read it.")
    if current is not None:
        recording.record_change(
            "location", location_id, "delete", before=_audited(_location(current))
        )


async def exists(db: Connection, *, tenant_id: str, location_id: UUID) -> bool:
    """Whether the tenant has this location (for other domains validating references)."""
    return await repository.get(db, tenant_id=tenant_id, location_id=location_id) is not None


async def priorities(db: Connection, *, tenant_id: str) -> dict[UUID, tuple[int, bool]]:
    """Every location of the tenant: its allocation `priority` and whether it is `active`.

    For other domains choosing where to take stock from (higher priority first).
    """
    rows = await repository.priorities(db, tenant_id=tenant_id)
    return {row["id"]: (row["priority"], row["active"]) for row in rows}
