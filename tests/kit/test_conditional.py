"""Entity tags: which `If-Match` demands which version, and when `If-None-Match` means 304."""

from __future__ import annotations

import pytest

from shelfkeeper.kit.conditional import MAX_VERSION, etag, expected_version, not_modified
from shelfkeeper.kit.problems import VersionMismatch


def test_an_etag_is_the_quoted_version() -> None:
    assert etag(7) == '"7"'


@pytest.mark.parametrize(
    ("header", "version"),
    [
        (None, None),
        ("*", None),
        (" * ", None),
        ('"1"', 1),
        (' "12" ', 12),
        ('"3", "4"', 3),
        ('W/"9", "4"', 4),
        ('"x", "5"', 5),
        (f'"{MAX_VERSION}"', MAX_VERSION),
    ],
)
def test_if_match_names_the_expected_version(header: str | None, version: int | None) -> None:
    assert expected_version(header) == version


@pytest.mark.parametrize(
    "header",
    [
        "",
        "1",
        'W/"1"',
        '"abc"',
        '"-1"',
        '"0"',
        '"1.5"',
        '""',
        '"',
        '"\u0661"',
        f'"{MAX_VERSION + 1}"',
        '"99999999999"',
        '"' + "9" * 400 + '"',
    ],
)
def test_if_match_naming_no_version_we_issue_is_412(header: str) -> None:
    with pytest.raises(VersionMismatch) as raised:
        expected_version(header)

    assert raised.value.status == 412


@pytest.mark.parametrize(
    ("header", "version", "expected"),
    [
        (None, 1, False),
        ('"1"', 1, True),
        ('W/"1"', 1, True),
        ('"0", "1"', 1, True),
        ("*", 5, True),
        ('"1"', 2, False),
        ("1", 1, False),
        ("", 1, False),
    ],
)
def test_if_none_match_holding_the_current_etag_means_not_modified(
    header: str | None, version: int, expected: bool
) -> None:
    assert not_modified(header, version) is expected
