"""Audit rules: which entries a unit of work writes, what they may hold, and reading them.

A request's (or a job's) changes, described by the services that made them
(`kit.recording.record_change`), become one entry each, written in the transaction that
made them; a mutating request whose services described nothing still gets one generic
entry (its operation and the entity its path or response names). Entries never hold
personal data or secrets: fields whose names suggest them are replaced by `[REDACTED]`
(at any depth), and e-mail addresses, tokens, API keys and webhook secrets are scrubbed
from every text. Only the fields that changed are kept.

Platform operations (the tenant lifecycle, exports, the command line's mutations) go to the
platform trail (`platform_audit_entry`) instead, redacted the same way, each entry naming
the tenant it concerned: `write_platform` (a request's, from its auditor),
`platform_transaction` (a command's transaction), `record_platform_operation` (one entry,
from any transaction). Entries of the command line are `cli_origin()`'s.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic_core import to_jsonable_python

from shelfkeeper.audit import repository
from shelfkeeper.audit.schemas import AuditEntry, PlatformAuditEntry
from shelfkeeper.auth.principal import Principal, Role
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database, Record, bind_tenant
from shelfkeeper.kit import recording
from shelfkeeper.kit.pagination import TIMESTAMP_FIELD, Page, SortField, keyset, page_of
from shelfkeeper.observability.logging import scrub

REDACTED = "[REDACTED]"
SENSITIVE_KEY = re.compile(
    r"e-?mail|phone|address|customer|first_?name|last_?name|full_?name|birth"
    r"|secret|token|passw|api[-_]?key|key_hash|hash$|credential|authori[sz]ation|cookie"
    r"|^notes?$|metadata",
    re.IGNORECASE,
)
"""Field names whose values never enter the trail: personal data (a customer and anything
under it, addresses, contact details), secrets, and free texts that may hold either."""
SORT = "-occurred_at"
SORT_FIELDS = {"occurred_at": SortField("occurred_at", TIMESTAMP_FIELD)}


@dataclass(frozen=True)
class Origin:
    """Who made a unit of work's changes, and from where."""

    actor: str
    role: str | None
    request_id: str | None = None
    client_address: str | None = None

    @classmethod
    def of(
        cls, principal: Principal, *, request_id: str | None = None, client: str | None = None
    ) -> Origin:
        role = principal.primary_role
        return cls(
            actor=principal.actor,
            role=role.value if role is not None else None,
            request_id=request_id,
            client_address=client,
        )


SYSTEM = Origin(actor="system", role=None)
"""The service itself (jobs): no role, no request."""

TENANT_ENTITY = "tenant"
"""The entity type of a tenant itself (platform operations' changes)."""


def cli_origin() -> Origin:
    """The operator running a command line mutation: `cli:<os user>`, role
    `platform_admin` (whoever can run the command holds the database), no request."""
    try:
        user = getpass.getuser()
    except OSError:  # no login name in the environment and no passwd entry
        user = "unknown"
    return Origin(actor=f"cli:{user}", role=Role.PLATFORM_ADMIN.value)


def redact(value: Any) -> Any:
    """`value` (JSON-like) without personal data or secrets (a sensitive field that is
    null stays null: it holds nothing)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {
            str(key): REDACTED
            if item is not None and SENSITIVE_KEY.search(str(key))
            else redact(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(item) for item in value]
    return value


def _fields(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    jsonable = to_jsonable_python(dict(value), fallback=str)
    redacted: dict[str, Any] = redact(jsonable)
    return redacted


def _changed(change: recording.Change) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The change's before and after, keeping only the fields that differ when it has both."""
    before, after = _fields(change.before), _fields(change.after)
    if before is not None and after is not None:
        differing = {
            key for key in before.keys() | after.keys() if before.get(key) != after.get(key)
        }
        before = {key: value for key, value in before.items() if key in differing}
        after = {key: value for key, value in after.items() if key in differing}
    return before, after


def entries(origin: Origin, changes: Sequence[recording.Change]) -> list[repository.NewEntry]:
    result = []
    for change in changes:
        before, after = _changed(change)
        result.append(
            repository.NewEntry(
                actor=origin.actor,
                role=origin.role,
                action=change.action,
                entity_type=change.entity_type,
                entity_id=None if change.entity_id is None else scrub(change.entity_id),
                before=before,
                after=after,
                request_id=origin.request_id,
                client_address=origin.client_address,
            )
        )
    return result


async def write(
    db: Connection,
    *,
    tenant_id: str,
    origin: Origin,
    changes: Sequence[recording.Change],
    otherwise: recording.Change | None = None,
) -> int:
    """Append one entry per change, or the entry `otherwise` when there is none, in the
    transaction `db` (bound to `tenant_id`); returns how many were written."""
    described = list(changes) or ([otherwise] if otherwise is not None else [])
    if not described:
        return 0
    await repository.insert(db, tenant_id=tenant_id, entries=entries(origin, described))
    return len(described)


async def write_each(
    db: Connection,
    *,
    tenant_id: str,
    described: Sequence[tuple[Origin, Sequence[recording.Change]]],
) -> int:
    """Append the entries of several units of work at once (each with its own origin), in
    the transaction `db` (bound to `tenant_id`), sent together. Returns how many."""
    new = [entry for origin, changes in described for entry in entries(origin, changes)]
    if new:
        await repository.insert(db, tenant_id=tenant_id, entries=new)
    return len(new)


def _concerned(change: recording.Change, tenant_id: str | None) -> str | None:
    if tenant_id is not None:
        return tenant_id
    return change.entity_id if change.entity_type == TENANT_ENTITY else None


async def write_platform(
    db: Connection,
    *,
    origin: Origin,
    changes: Sequence[recording.Change],
    tenant_id: str | None = None,
    otherwise: recording.Change | None = None,
) -> int:
    """Append one platform entry per change (or the entry `otherwise` when there is none)
    in the transaction `db`, redacted like a tenant's entries; returns how many.

    Each entry concerns `tenant_id`, or, when that is None, the tenant a change to a
    `tenant` names. Whatever tenant `db` is bound to, the entries are written in the
    platform scope (the table's row-level security) and the binding is restored after.
    """
    described = list(changes) or ([otherwise] if otherwise is not None else [])
    if not described:
        return 0
    new = entries(origin, described)
    concerned = [_concerned(change, tenant_id) for change in described]
    bound = await repository.current_binding(db)
    if bound != PLATFORM_SCOPE:
        await bind_tenant(db, PLATFORM_SCOPE)
    await repository.insert_platform(db, entries=list(zip(concerned, new, strict=True)))
    if bound != PLATFORM_SCOPE:
        await bind_tenant(db, bound or "")
    return len(new)


async def record_platform_operation(
    db: Connection,
    *,
    tenant_id: str | None,
    action: str,
    entity_type: str = TENANT_ENTITY,
    entity_id: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    origin: Origin | None = None,
) -> None:
    """Append one platform entry in the transaction `db` (any binding): for command line
    operations (`origin` defaults to `cli_origin()`) such as key rotation. `entity_id`
    defaults to `tenant_id` for a change to the tenant itself."""
    if entity_id is None and entity_type == TENANT_ENTITY:
        entity_id = tenant_id
    await write_platform(
        db,
        origin=origin or cli_origin(),
        tenant_id=tenant_id,
        changes=[recording.Change(entity_type, entity_id, action, before, after)],
    )


@asynccontextmanager
async def platform_transaction(
    database: Database, *, origin: Origin | None = None
) -> AsyncIterator[Connection]:
    """A transaction in the platform scope for a platform operation outside a request (the
    command line): the changes its services describe become platform entries, as `origin`
    (default `cli_origin()`), written in it before it commits; its after-commit work runs
    once it has committed."""
    with recording.unit_of_work() as work:
        async with database.tenant_transaction(PLATFORM_SCOPE) as db:
            yield db
            await write_platform(db, origin=origin or cli_origin(), changes=work.changes)
    work.committed()


@asynccontextmanager
async def audited_transaction(
    database: Database, tenant_id: str, *, origin: Origin = SYSTEM
) -> AsyncIterator[Connection]:
    """A transaction bound to `tenant_id` for work outside a request (jobs, signed
    callbacks): the changes its services describe are audited in it, as `origin`, and its
    after-commit work runs once it has committed. Writes no generic entry."""
    with recording.unit_of_work() as work:
        async with database.tenant_transaction(tenant_id) as db:
            yield db
            await write(db, tenant_id=tenant_id, origin=origin, changes=work.changes)
    work.committed()


def _entry(row: Record) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        occurred_at=row["occurred_at"],
        actor=row["actor"],
        role=row["role"],
        action=row["action"],
        entity_type=row["entity_type"],
        entity_id=row["entity_id"],
        before=row["before"],
        after=row["after"],
        request_id=row["request_id"],
        client_address=row["client_address"],
    )


def _platform_entry(row: Record) -> PlatformAuditEntry:
    return PlatformAuditEntry(tenant_id=row["target_tenant_id"], **_entry(row).model_dump())


@dataclass(frozen=True)
class AuditFilter:
    """What a reader of a trail asked for; `after` keeps the entries strictly later (a time
    without a zone is UTC)."""

    entity_type: str | None = None
    entity_id: str | None = None
    actor: str | None = None
    after: datetime | None = None


EVERY_ENTRY = AuditFilter()

Entry = TypeVar("Entry", bound=AuditEntry)


async def _page(
    db: Connection,
    *,
    trail: Literal["tenant", "platform"],
    tenant_id: str,
    cursor: str | None,
    limit: int,
    filters: AuditFilter,
    entry: Callable[[Record], Entry],
) -> Page[Entry]:
    after = filters.after
    if after is not None and after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    page = keyset(sort=SORT, fields=SORT_FIELDS, cursor=cursor, limit=limit, first_parameter=6)
    rows = await repository.list_page(
        db,
        tenant_id=tenant_id,
        keyset=page,
        entity_type=filters.entity_type,
        entity_id=filters.entity_id,
        actor=filters.actor,
        after=after,
        trail=trail,
    )
    return page_of(
        [entry(row) for row in rows],
        limit=limit,
        sort=SORT,
        sort_value=lambda found: found.occurred_at,
        row_id=lambda found: found.id,
    )


async def list_entries(
    db: Connection,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    filters: AuditFilter = EVERY_ENTRY,
) -> Page[AuditEntry]:
    """The tenant's entries, newest first, filtered. Raises ValidationFailed (422) for a
    foreign cursor."""
    assert principal.tenant_id is not None
    return await _page(
        db,
        trail="tenant",
        tenant_id=principal.tenant_id,
        cursor=cursor,
        limit=limit,
        filters=filters,
        entry=_entry,
    )


async def list_platform_entries(
    db: Connection, *, tenant_id: str, cursor: str | None, limit: int, filters: AuditFilter
) -> Page[PlatformAuditEntry]:
    """The platform's entries about `tenant_id` (which need not exist any more), newest
    first, filtered and paged as `list_entries`; `db` bound to the platform scope. Raises
    ValidationFailed (422) for a foreign cursor."""
    return await _page(
        db,
        trail="platform",
        tenant_id=tenant_id,
        cursor=cursor,
        limit=limit,
        filters=filters,
        entry=_platform_entry,
    )
