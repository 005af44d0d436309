"""Optimistic concurrency over HTTP: `ETag: "<version>"`, `If-Match`, `If-None-Match`."""

from __future__ import annotations

from fastapi import Response

from shelfkeeper.kit.problems import VersionMismatch


def etag(version: int) -> str:
    return f'"{version}"'


MAX_VERSION = 2**31 - 1
"""Versions are `integer` columns; a larger number can never be current."""


def _tags(header: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()]


def _version(tag: str) -> int | None:
    """The version of a strong entity tag `"<digits>"` we could have issued, else None."""
    tag = tag.strip()
    if len(tag) < 3 or not (tag.startswith('"') and tag.endswith('"')):
        return None
    inner = tag[1:-1]
    if not (inner.isascii() and inner.isdigit()) or len(inner) > len(str(MAX_VERSION)):
        return None
    version = int(inner)
    return version if 1 <= version <= MAX_VERSION else None


def expected_version(if_match: str | None) -> int | None:
    """The version an `If-Match` header demands (None when absent or `*`).

    `If-Match` compares strongly (RFC 9110 §13.1.1): a weak tag (`W/"1"`) never matches.
    A header naming no version we could ever have issued can only be stale: raises
    VersionMismatch (412).
    """
    if if_match is None or if_match.strip() == "*":
        return None
    for tag in if_match.split(","):
        version = _version(tag)
        if version is not None:
            return version
    raise VersionMismatch("If-Match names no current version of this resource.")


def not_modified(if_none_match: str | None, version: int) -> bool:
    """True when `If-None-Match` already holds the current ETag (answer 304)."""
    if if_none_match is None:
        return False
    tags = _tags(if_none_match)
    return "*" in tags or etag(version) in tags


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = etag(version)


class NotModified(Exception):
    """Raised by a GET whose `If-None-Match` holds the current ETag; answered with 304."""

    def __init__(self, version: int) -> None:
        self.version = version


def check_not_modified(if_none_match: str | None, version: int) -> None:
    """Raise NotModified when the client already holds `version`."""
    if not_modified(if_none_match, version):
        raise NotModified(version)
