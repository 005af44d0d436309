"""RFC 9457 problem details: one exception class per condition, one renderer.

Each `Problem` subclass knows its HTTP status, its slug (the last segment of `type`) and its
title. Endpoints list the problems they may return with `problem_responses(...)` so that the
OpenAPI document shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

PROBLEM_BASE_URI = "https://shelfkeeper.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class ValidationErrorDetail(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ProblemDocument(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=[PROBLEM_BASE_URI + "not-found"])
    title: str = Field(examples=["Not found"])
    status: int = Field(examples=[404])
    detail: str | None = Field(default=None, examples=["No location with that id."])
    instance: str | None = Field(default=None, examples=["/api/v1/acme/locations/4b1c..."])
    errors: list[ValidationErrorDetail] | None = None


class Problem(Exception):
    """An expected error condition, rendered as problem+json."""

    status: ClassVar[int] = 400
    slug: ClassVar[str] = "bad-request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions

    def document(self, instance: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE_URI + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extensions)
        return body

    def response(self, instance: str | None) -> JSONResponse:
        return JSONResponse(
            self.document(instance),
            status_code=self.status,
            headers=self.headers,
            media_type=PROBLEM_MEDIA_TYPE,
        )


class BadRequest(Problem):
    pass


class Unauthorized(Problem):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str | None = None) -> None:
        challenge = 'Bearer realm="shelfkeeper"'
        if detail is not None:
            challenge += ', error="invalid_token"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})


class Forbidden(Problem):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class TenantMismatch(Problem):
    status = 403
    slug = "tenant-mismatch"
    title = "Credential belongs to another tenant"


class NotFound(Problem):
    status = 404
    slug = "not-found"
    title = "Not found"


class MethodNotAllowed(Problem):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class Conflict(Problem):
    status = 409
    slug = "conflict"
    title = "Conflict"


class VersionMismatch(Problem):
    status = 412
    slug = "version-mismatch"
    title = "The resource has changed since you read it"


class PayloadTooLarge(Problem):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class UnsupportedMediaType(Problem):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class ValidationFailed(Problem):
    status = 422
    slug = "validation-error"
    title = "The request is not valid"

    def __init__(self, errors: list[dict[str, Any]], detail: str | None = None) -> None:
        super().__init__(detail or "See `errors` for each invalid field.", errors=errors)


class InternalError(Problem):
    status = 500
    slug = "internal-error"
    title = "Internal server error"


def validation_error(location: list[str | int], message: str, kind: str) -> ValidationFailed:
    """A 422 about one field, shaped like FastAPI's own validation errors."""
    return ValidationFailed([{"loc": location, "msg": message, "type": kind}])


def problem_responses(*problems: type[Problem]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the given problems (grouped by status).

    The app's OpenAPI hook publishes these under `application/problem+json`.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for problem in problems:
        entry = responses.setdefault(problem.status, {"model": ProblemDocument, "description": ""})
        entry["description"] = " / ".join(
            filter(None, [entry["description"], f"`{problem.slug}`: {problem.title}"])
        )
    return responses
