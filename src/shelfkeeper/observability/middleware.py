"""The outermost middleware: one access line and the request metrics for every request.

The access line (logger `shelfkeeper.access`, event `request`) names the route template
(`/api/v1/{tenant_id}/locations/{location_id}`, never the path with its ids, and never
the query string, which may carry e-mail addresses), the method, the status, the duration
in milliseconds, the request id, and the tenant and actor when the request got that far.
"""

from __future__ import annotations

import re
import time

import structlog
from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shelfkeeper.kit import context
from shelfkeeper.observability.metrics import UNMATCHED_ROUTE, Metrics

access_logger = structlog.stdlib.get_logger("shelfkeeper.access")


def route_template(scope: Scope, *, path: str, root_path: str) -> str | None:
    """The path template of the route that served the request (None if none matched).

    `path` and `root_path` are the request's as it arrived (a mount rewrites `root_path`).

    FastAPI marks the request's scope with the API route that served it, but keeps an
    included router's routes with paths relative to the router's prefix
    (`/{tenant_id}/locations` under `/api/v1`), so the prefix is recovered from the path: it
    is what precedes the part the route's pattern matches. A prefix segment equal to a path
    parameter's value is written as that parameter, so no id ever reaches a label. Routes
    that are not API routes (the OpenAPI document, the docs' assets) leave no mark; they
    are found among the app's own routes.
    """
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    route = scope.get("route") or top_level_route(scope, path)
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    pattern = getattr(route, "path_regex", None)
    if isinstance(route, Mount) or not isinstance(pattern, re.Pattern) or pattern.match(path):
        return template
    values = {str(value): name for name, value in scope.get("path_params", {}).items()}
    for index, character in enumerate(path):
        if character == "/" and index > 0 and pattern.match(path[index:]):
            prefix = "/".join(
                "{" + values[segment] + "}" if segment in values else segment
                for segment in path[:index].split("/")
            )
            return prefix + template
    return template


def top_level_route(scope: Scope, path: str) -> BaseRoute | None:
    """The app's own route or mount (not an included router's) that matches `path`."""
    router = getattr(scope.get("app"), "router", None)
    probe = {"type": "http", "path": path, "root_path": "", "method": scope.get("method")}
    for route in getattr(router, "routes", ()):
        if isinstance(route, Route | Mount) and route.matches(probe)[0] is not Match.NONE:
            return route
    return None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path, root_path = str(scope.get("path", "")), str(scope.get("root_path", ""))
        state = scope.setdefault("state", {})
        status = 500  # if the response never starts

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            duration = time.perf_counter() - started
            route = route_template(scope, path=path, root_path=root_path)
            fields = context.bound_fields(scope)
            if self.metrics is not None:
                self.metrics.observe_request(
                    route=route,
                    method=scope["method"],
                    status=status,
                    duration_seconds=duration,
                    tenant=fields.get("tenant"),
                )
            access_logger.info(
                "request",
                method=scope["method"],
                route=route or UNMATCHED_ROUTE,
                status=status,
                duration_ms=round(duration * 1000, 2),
                request_id=state.get("request_id"),
                tenant=fields.get("tenant"),
                actor=fields.get("actor"),
            )
