"""Keyset (cursor) pagination: constant time per page, whatever the table's size.

A cursor is the sort key of the last row of a page (the sort field's value and the id),
encoded as opaque base64url JSON. The next page is `WHERE (field, id) > (value, id)` (or `<`
for a descending sort), served by an index on `(tenant_id, field, id)`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from fastapi import Query
from pydantic import BaseModel, Field

from shelfkeeper.kit.problems import validation_error

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    data: list[T]
    next_cursor: str | None = Field(
        description="Opaque cursor for the next page; null on the last page."
    )


@dataclass(frozen=True)
class SortField:
    """A sortable column: its SQL expression and how to read its value back from a cursor."""

    column: str
    parse: Callable[[Any], Any]


def _parse_datetime(value: Any) -> datetime:
    """An aware timestamp, in UTC (the database compares it with `timestamptz`)."""
    if not isinstance(value, str):
        raise ValueError("not a timestamp")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return parsed.astimezone(UTC)


def _parse_text(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not text")
    return value


TIMESTAMP_FIELD = _parse_datetime
TEXT_FIELD = _parse_text


LimitParam = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (1..200).")]
CursorParam = Annotated[
    str | None,
    Query(max_length=1024, description="`next_cursor` of the previous page."),
]


@dataclass(frozen=True)
class Keyset:
    """The SQL fragments for one page: an extra WHERE condition, ORDER BY and LIMIT."""

    condition: str
    order_by: str
    limit: int
    arguments: list[Any]


def keyset(
    *,
    sort: str,
    fields: dict[str, SortField],
    cursor: str | None,
    limit: int,
    first_parameter: int,
    parse_id: Callable[[Any], Any] = UUID,
) -> Keyset:
    """Build the keyset fragments for `sort` (`field` or `-field`) after `cursor`.

    Raises ValidationFailed (422) for an unknown sort field or a cursor that is not one of ours.
    """
    descending = sort.startswith("-")
    name = sort.removeprefix("-")
    field = fields.get(name)
    if field is None:
        allowed = ", ".join(sorted(fields))
        raise validation_error(["query", "sort"], f"Sort by one of: {allowed}.", "enum")
    direction = "DESC" if descending else "ASC"
    order_by = f"{field.column} {direction}, id {direction}"
    if cursor is None:
        return Keyset("TRUE", order_by, limit, [])
    value, last_id = decode_cursor(cursor, sort=sort, parse=field.parse, parse_id=parse_id)
    operator = "<" if descending else ">"
    a, b = first_parameter, first_parameter + 1
    condition = f"({field.column}, id) {operator} (${a}, ${b})"
    return Keyset(condition, order_by, limit, [value, last_id])


def encode_cursor(*, sort: str, value: Any, last_id: Any) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([sort, value, str(last_id)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str, *, sort: str, parse: Callable[[Any], Any], parse_id: Callable[[Any], Any]
) -> tuple[Any, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        cursor_sort, value, last_id = json.loads(base64.urlsafe_b64decode(padded))
        if cursor_sort != sort:
            raise ValueError("cursor from another sort order")
        if not isinstance(last_id, str):
            raise ValueError("cursor id is not text")
        return parse(value), parse_id(last_id)
    except (ValueError, TypeError, OverflowError, RecursionError, binascii.Error) as error:
        raise validation_error(
            ["query", "cursor"], "Not a cursor of this list and sort order.", "cursor"
        ) from error


def page_of(
    rows: Sequence[T],
    *,
    limit: int,
    sort: str,
    sort_value: Callable[[T], Any],
    row_id: Callable[[T], Any],
) -> Page[T]:
    """Turn `limit + 1` fetched rows into a page and the cursor after its last row."""
    if len(rows) <= limit:
        return Page(data=list(rows), next_cursor=None)
    last = rows[limit - 1]
    next_cursor = encode_cursor(sort=sort, value=sort_value(last), last_id=row_id(last))
    return Page(data=list(rows[:limit]), next_cursor=next_cursor)
