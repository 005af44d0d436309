"""Assertions about problem documents, shared by the endpoint tests of every domain."""

from __future__ import annotations

import re
from typing import Any

import httpx

from shelfkeeper.kit.problems import PROBLEM_BASE_URI, PROBLEM_MEDIA_TYPE

GENERATED_REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


def assert_problem(response: httpx.Response, *, status: int, slug: str) -> dict[str, Any]:
    """`response` is an RFC 9457 problem with `status` and `slug`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_BASE_URI + slug
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["instance"] == response.request.url.path
    assert "X-Request-ID" in response.headers
    return body


def assert_validation_error(response: httpx.Response) -> list[dict[str, Any]]:
    """`response` is a 422 `validation-error` problem; returns its `errors`."""
    body = assert_problem(response, status=422, slug="validation-error")
    errors: list[dict[str, Any]] = body["errors"]
    assert errors
    for error in errors:
        assert set(error) == {"loc", "msg", "type"}
        assert isinstance(error["loc"], list)
        assert isinstance(error["msg"], str)
        assert isinstance(error["type"], str)
    return errors


def error_locations(response: httpx.Response) -> list[list[str | int]]:
    """The `loc` of each error of a 422 `validation-error` problem."""
    return [error["loc"] for error in assert_validation_error(response)]
