"""What a unit of work (a request's or a job's transaction) did, told by the code that did it.

Services describe their changes (`record_change`: the entity, the action, its state before
and after) and register work that must wait for the commit (`after_commit`: counting a
metric); the owner of the transaction reads the changes before it commits (the audit
trail is written in the same transaction) and runs the callbacks only once it has
committed, so a change that was rolled back is neither audited nor counted.

The current unit of work lives in a context variable (`unit_of_work`); outside one, both
calls do nothing. A savepoint that rolls back must forget what was recorded inside it:
use `savepoint` instead of `connection.transaction()` for nested transactions.

Kept domain-free: entity types and actions are plain strings named by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from shelfkeeper.db.database import Connection

logger = logging.getLogger("shelfkeeper")


@dataclass(frozen=True)
class Change:
    """One change to one entity, as its service describes it.

    `before` and `after` hold the fields that changed (None for a creation's `before` and
    a deletion's `after`); they are redacted before anything stores them.
    """

    entity_type: str
    entity_id: str | None
    action: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None


@dataclass
class UnitOfWork:
    """The changes and after-commit callbacks of one transaction."""

    changes: list[Change] = field(default_factory=list)
    callbacks: list[Callable[[], None]] = field(default_factory=list)
    audited: bool = False
    """Its audit entries were written already, in the transaction of the change (the
    coalesced reservations' rounds do this): the owner writes none."""

    def committed(self) -> None:
        """Run the after-commit callbacks (once); a failing one is logged, never raised."""
        callbacks, self.callbacks = self.callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                logger.exception("after-commit callback failed")


_current: ContextVar[UnitOfWork | None] = ContextVar("unit_of_work", default=None)


@contextmanager
def unit_of_work() -> Iterator[UnitOfWork]:
    """Make a new unit of work current for the duration of the block (its transaction)."""
    work = UnitOfWork()
    token = _current.set(work)
    try:
        yield work
    finally:
        _current.reset(token)


def current() -> UnitOfWork | None:
    return _current.get()


def record_change(
    entity_type: str,
    entity_id: object,
    action: str,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    """Describe a change made in the current transaction (for its audit entry)."""
    identifier = None if entity_id is None else str(entity_id)
    record(Change(entity_type, identifier, action, before, after))


def record(change: Change) -> None:
    """Add a described change to the current transaction's (for its audit entry)."""
    work = _current.get()
    if work is not None:
        work.changes.append(change)


def mark_audited() -> None:
    """Tell the owner of the current unit of work that its audit entries are written."""
    work = _current.get()
    if work is not None:
        work.audited = True


def after_commit(callback: Callable[[], None]) -> None:
    """Run `callback` once the current transaction has committed (never if it rolls back).

    Outside a unit of work the callback is dropped: nothing would tell when to run it.
    """
    work = _current.get()
    if work is not None:
        work.callbacks.append(callback)


@asynccontextmanager
async def savepoint(connection: Connection) -> AsyncIterator[None]:
    """A nested transaction (savepoint) whose recorded changes and callbacks are forgotten
    when it rolls back, as its writes are."""
    work = _current.get()
    changes = len(work.changes) if work is not None else 0
    callbacks = len(work.callbacks) if work is not None else 0
    try:
        async with connection.transaction():
            yield
    except BaseException:
        if work is not None:
            del work.changes[changes:]
            del work.callbacks[callbacks:]
        raise
