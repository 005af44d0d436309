"""Keyset cursors: opaque, tied to their sort order, and refused (422) when not ours."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shelfkeeper.kit.pagination import (
    TEXT_FIELD,
    TIMESTAMP_FIELD,
    SortField,
    decode_cursor,
    encode_cursor,
    keyset,
    page_of,
)
from shelfkeeper.kit.problems import ValidationFailed

FIELDS = {
    "code": SortField("code", TEXT_FIELD),
    "created_at": SortField("created_at", TIMESTAMP_FIELD),
}
ROW_ID = uuid.UUID("4b1c2d3e-aaaa-4bbb-8ccc-123456789012")


def errors_of(raised: pytest.ExceptionInfo[ValidationFailed]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = raised.value.extensions["errors"]
    return errors


def test_a_cursor_round_trips_text_and_timestamps() -> None:
    moment = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)

    text_cursor = encode_cursor(sort="code", value="WH-1", last_id=ROW_ID)
    time_cursor = encode_cursor(sort="-created_at", value=moment, last_id=ROW_ID)

    assert decode_cursor(text_cursor, sort="code", parse=TEXT_FIELD, parse_id=uuid.UUID) == (
        "WH-1",
        ROW_ID,
    )
    assert decode_cursor(
        time_cursor, sort="-created_at", parse=TIMESTAMP_FIELD, parse_id=uuid.UUID
    ) == (moment, ROW_ID)
    assert "=" not in text_cursor


def test_a_timestamp_in_another_zone_is_read_as_utc() -> None:
    moment = datetime(2026, 3, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    cursor = encode_cursor(sort="created_at", value=moment, last_id=ROW_ID)

    value, _ = decode_cursor(cursor, sort="created_at", parse=TIMESTAMP_FIELD, parse_id=uuid.UUID)

    assert (value, value.tzinfo) == (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), UTC)


def test_keyset_without_a_cursor_starts_at_the_beginning() -> None:
    page = keyset(sort="-code", fields=FIELDS, cursor=None, limit=3, first_parameter=4)

    assert (page.condition, page.order_by, page.limit, page.arguments) == (
        "TRUE",
        "code DESC, id DESC",
        3,
        [],
    )


@pytest.mark.parametrize(("sort", "operator"), [("code", ">"), ("-code", "<")])
def test_keyset_after_a_cursor_continues_past_its_row(sort: str, operator: str) -> None:
    cursor = encode_cursor(sort=sort, value="WH-1", last_id=ROW_ID)

    page = keyset(sort=sort, fields=FIELDS, cursor=cursor, limit=3, first_parameter=4)

    assert page.condition == f"(code, id) {operator} ($4, $5)"
    assert page.arguments == ["WH-1", ROW_ID]


@pytest.mark.parametrize("sort", ["name", "-name", "", "-", "code DESC", "id"])
def test_an_unknown_sort_is_refused(sort: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        keyset(sort=sort, fields=FIELDS, cursor=None, limit=3, first_parameter=1)

    assert [error["loc"] for error in errors_of(raised)] == [["query", "sort"]]


def raw_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        ("code", "garbage"),
        ("code", "%%%"),
        ("code", raw_cursor(["-code", "WH-1", str(ROW_ID)])),
        ("code", raw_cursor(["code", "WH-1"])),
        ("code", raw_cursor(["code", "WH-1", str(ROW_ID), 4])),
        ("code", raw_cursor(["code", None, str(ROW_ID)])),
        ("code", raw_cursor(["code", "WH\u00001", str(ROW_ID)])),
        ("code", raw_cursor(["code", "WH-1", 12])),
        ("code", raw_cursor(["code", "WH-1", "12"])),
        ("code", raw_cursor({"sort": "code"})),
        ("code", raw_cursor(7)),
        ("code", raw_cursor("[" * 5000)),
        ("created_at", raw_cursor(["created_at", "yesterday", str(ROW_ID)])),
        ("created_at", raw_cursor(["created_at", "2026-03-01T12:00:00", str(ROW_ID)])),
        ("created_at", raw_cursor(["created_at", 1767225600, str(ROW_ID)])),
        ("created_at", raw_cursor(["created_at", "0001-01-01T00:00:00+14:00", str(ROW_ID)])),
        ("created_at", raw_cursor(["created_at", "9999-12-31T23:59:59-14:00", str(ROW_ID)])),
    ],
)
def test_a_cursor_that_is_not_ours_is_refused(sort: str, cursor: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        keyset(sort=sort, fields=FIELDS, cursor=cursor, limit=3, first_parameter=1)

    assert [error["loc"] for error in errors_of(raised)] == [["query", "cursor"]]


def test_a_page_of_limit_plus_one_rows_has_a_cursor_after_its_last_row() -> None:
    rows = [{"code": code, "id": uuid.UUID(int=index)} for index, code in enumerate("ABCD")]

    page = page_of(
        rows, limit=3, sort="code", sort_value=lambda row: row["code"], row_id=lambda row: row["id"]
    )

    assert page.data == rows[:3]
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor, sort="code", parse=TEXT_FIELD, parse_id=uuid.UUID) == (
        "C",
        uuid.UUID(int=2),
    )


@pytest.mark.parametrize("count", [0, 1, 3])
def test_a_page_of_at_most_limit_rows_is_the_last(count: int) -> None:
    rows = [{"code": "A", "id": uuid.UUID(int=index)} for index in range(count)]

    page = page_of(
        rows, limit=3, sort="code", sort_value=lambda row: row["code"], row_id=lambda row: row["id"]
    )

    assert (page.data, page.next_cursor) == (rows, None)
