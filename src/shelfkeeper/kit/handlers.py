"""Exception handlers: every error leaves the service as problem+json."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from shelfkeeper.kit.conditional import NotModified, etag
from shelfkeeper.kit.idempotency import IdempotentReplay
from shelfkeeper.kit.problems import (
    BadRequest,
    InternalError,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Problem,
    ValidationFailed,
    validation_error,
)

BODY_PARSE_ERRORS = (ValueError, RecursionError)
"""What decoding a request body as JSON may raise besides a syntax error."""

UNSTORABLE_TEXT_ERRORS = (
    asyncpg.CharacterNotInRepertoireError,
    asyncpg.UntranslatableCharacterError,
)
"""Database errors about text it cannot store: bad input, never a crash."""

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

HTTP_PROBLEMS: dict[int, type[Problem]] = {
    400: BadRequest,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def _error_detail(error: Any) -> dict[str, Any]:
    return {
        "loc": [part if isinstance(part, int) else str(part) for part in error.get("loc", ())],
        "msg": str(error.get("msg", "")),
        "type": str(error.get("type", "")),
    }


async def problem_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)
    return exc.response(request.url.path)


async def validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_error_detail(error) for error in exc.errors()]
    return ValidationFailed(errors).response(request.url.path)


def malformed_body() -> ValidationFailed:
    return validation_error(
        ["body"],
        "Not decodable as JSON: it must be UTF-8 and not nested absurdly deep.",
        "json_invalid",
    )


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400 and isinstance(exc.__cause__, BODY_PARSE_ERRORS):
        # FastAPI answers 400 for a body `json.loads` cannot even decode (not UTF-8, nested
        # too deep); that is malformed JSON like any other, so 422 `json_invalid`.
        return malformed_body().response(request.url.path)
    fallback = BadRequest if exc.status_code < 500 else InternalError
    problem = HTTP_PROBLEMS.get(exc.status_code, fallback)()
    response = problem.response(request.url.path)
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405 and (allowed := allowed_methods(request)):
        response.headers["Allow"] = ", ".join(allowed)
    return response


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path (RFC 9110 `Allow`).

    The router names only the methods of the first route whose path matched, but FastAPI
    registers one route per method, so each method is tried against every route.
    """
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = []
    for method in METHODS:
        scope = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
        }
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            allowed.append(method)
    return allowed


async def unstorable_text_handler(request: Request, exc: Exception) -> Response:
    """Text PostgreSQL cannot store (NUL characters) that slipped past the schemas: 422."""
    assert isinstance(exc, UNSTORABLE_TEXT_ERRORS)
    problem = validation_error(
        ["request"],
        "Text may not contain NUL (U+0000) or other characters the database cannot store.",
        "string_unstorable",
    )
    return problem.response(request.url.path)


async def not_modified_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotModified)
    return Response(status_code=304, headers={"ETag": etag(exc.version)})


async def replay_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, IdempotentReplay)
    return exc.response


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, problem_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(IdempotentReplay, replay_handler)
    app.add_exception_handler(NotModified, not_modified_handler)
    for error in UNSTORABLE_TEXT_ERRORS:
        app.add_exception_handler(error, unstorable_text_handler)
