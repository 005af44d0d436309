"""The route class every API router uses: one transaction per request.

The handler (dependencies, endpoint and response rendering) runs inside one database
transaction on one pooled connection, available to dependencies as
`request.state.connection`. The transaction commits after the response has been rendered
and before it is sent, so a client never sees success for a change that did not commit;
any exception rolls it back. Reads run in read-only transactions. A JSON body is read in
full before the transaction begins.

Each request is a unit of work (`kit.recording`): after a mutating handler succeeds, the
app's auditor (`app.state.auditor`) writes what it changed in the same transaction, and the
work registered with `recording.after_commit` runs once the transaction has committed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from shelfkeeper.db.database import Connection, Database
from shelfkeeper.kit import idempotency, recording
from shelfkeeper.kit.problems import UnsupportedMediaType

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

Authenticator = Callable[[Request], Awaitable[object]]
"""Set as `app.state.authenticator`: runs first in every transactional route, so a request
without a valid credential is refused (401) before its content type or body are judged."""

Auditor = Callable[[Request, Connection, Response, Sequence[recording.Change]], Awaitable[None]]
"""Set as `app.state.auditor`: runs after a successful mutating handler, before the commit,
with the changes the services recorded (possibly none), to write the request's audit trail."""


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "transfer-encoding" in request.headers


def connection_of(request: Request) -> Connection:
    """The request's transaction (set by `TransactionalRoute`)."""
    connection: Connection = request.state.connection
    return connection


class TransactionalRoute(APIRoute):
    """An APIRoute that wraps its handler in a transaction and stores idempotent responses."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_json_body = self.body_field is not None

        async def route_handler(request: Request) -> Response:
            sends_json_body = takes_json_body and has_body(request)
            if sends_json_body:
                # The whole body arrives before a pooled connection is taken, so a slow or
                # oversized upload never holds one (the body limit raises 413 right here).
                await request.body()
            database: Database = request.app.state.database
            readonly = request.method in READ_METHODS
            with recording.unit_of_work() as work:
                response = await run_in_transaction(
                    request, database, readonly=readonly, sends_json_body=sends_json_body, work=work
                )
            # Committed: what the services left for after the commit runs now (metrics).
            work.committed()
            return response

        async def run_in_transaction(
            request: Request,
            database: Database,
            *,
            readonly: bool,
            sends_json_body: bool,
            work: recording.UnitOfWork,
        ) -> Response:
            async with database.transaction(readonly=readonly) as connection:
                request.state.connection = connection
                authenticator: Authenticator | None = getattr(
                    request.app.state, "authenticator", None
                )
                if authenticator is not None:
                    request.state.principal = await authenticator(request)
                content_type = request.headers.get("content-type", "")
                if sends_json_body and not is_json(content_type):
                    raise UnsupportedMediaType(
                        f"Send `application/json`, not `{content_type or 'no content type'}`."
                    )
                response = await handler(request)
                if not readonly:
                    # The audit entries and the idempotent response commit with the change.
                    auditor: Auditor | None = getattr(request.app.state, "auditor", None)
                    if auditor is not None and response.status_code < 400 and not work.audited:
                        await auditor(request, connection, response, work.changes)
                    await idempotency.store(
                        request,
                        connection,
                        response,
                        ttl_seconds=request.app.state.settings.idempotency_ttl_seconds,
                    )
            return response

        return route_handler


def include_flat(target: APIRouter, router: APIRouter, *, prefix: str) -> None:
    """Add `router`'s routes to `target` under `prefix`, as routes of `target` itself.

    `include_router` keeps each included router as a node that is matched on its own: a
    request to a route two inclusions deep is matched against its router's routes three
    times (to choose the branch, then again to handle it, at each level), about 13% of the
    CPU of an item read (docs/benchmarks.md). Routes added here are matched once, in
    order, like a flat list. Each route keeps everything it declared and everything its
    router added to it (prefix, tags, dependencies, responses, route class), so the OpenAPI
    document is the same.
    """
    for route in router.routes:
        if not isinstance(route, APIRoute):
            raise TypeError(f"{route!r} is not an APIRoute; include it with include_router")
        target.add_api_route(
            prefix + route.path,
            route.endpoint,
            response_model=route.response_model,
            status_code=route.status_code,
            tags=route.tags,
            dependencies=route.dependencies,
            summary=route.summary,
            description=route.description,
            response_description=route.response_description,
            responses=route.responses,
            deprecated=route.deprecated,
            methods=route.methods,
            operation_id=route.operation_id,
            response_model_include=route.response_model_include,
            response_model_exclude=route.response_model_exclude,
            response_model_by_alias=route.response_model_by_alias,
            response_model_exclude_unset=route.response_model_exclude_unset,
            response_model_exclude_defaults=route.response_model_exclude_defaults,
            response_model_exclude_none=route.response_model_exclude_none,
            include_in_schema=route.include_in_schema,
            response_class=route.response_class,
            name=route.name,
            callbacks=route.callbacks,
            openapi_extra=route.openapi_extra,
            generate_unique_id_function=route.generate_unique_id_function,
            route_class_override=type(route),
        )
