"""What is known about the request being served: for its log lines, its access line, and
headers its response should carry.

`RequestContextMiddleware` binds the request id when the request arrives; the auth
dependencies bind the tenant and the actor once they are known (`bind`). Every log line
written while serving the request carries the bound fields (structlog context variables),
and the access line, written after the response, reads them from the request's scope.

Kept domain-free: the fields are plain strings named by the caller.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import structlog
from starlette.requests import HTTPConnection
from starlette.types import Scope

FIELDS_KEY = "log_fields"
"""Where the bound fields live in `scope["state"]` (shared by every layer of the request)."""
RESPONSE_HEADERS_KEY = "response_headers"


def _state(scope: Scope) -> dict[str, Any]:
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def bind(connection: HTTPConnection, **fields: str | None) -> None:
    """Bind `fields` to every log line written from now on while serving this request,
    and to its access line."""
    structlog.contextvars.bind_contextvars(**fields)
    _state(connection.scope).setdefault(FIELDS_KEY, {}).update(fields)


def bound_fields(scope: Scope) -> dict[str, str | None]:
    """The fields bound with `bind` while serving the request of `scope`."""
    fields: dict[str, str | None] = dict(scope.get("state", {}).get(FIELDS_KEY, {}))
    return fields


def add_response_headers(connection: HTTPConnection, headers: Mapping[str, str]) -> None:
    """Headers the response should carry, whatever it turns out to be (errors included).

    `RequestContextMiddleware` sets them when the response starts; a header the response
    already has is replaced.
    """
    _state(connection.scope).setdefault(RESPONSE_HEADERS_KEY, {}).update(headers)


def response_headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = dict(scope.get("state", {}).get(RESPONSE_HEADERS_KEY, {}))
    return headers


@contextmanager
def request_log_context(**fields: str) -> Iterator[None]:
    """Bind `fields` for the duration of a request, and afterwards restore the log context
    exactly as it was: fields bound while serving (tenant, actor) never leak into the next
    request served by the same task (an in-process test client does that)."""
    saved = structlog.contextvars.get_contextvars()
    structlog.contextvars.bind_contextvars(**fields)
    try:
        yield
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(**saved)
