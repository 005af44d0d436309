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
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shelfkeeper.kit import context
from shelfkeeper.observability.metrics import UNMATCHED_ROUTE, Metrics

access_logger = structlog.stdlib.get_logger("shelfkeeper.access")


def route_template(scope: Scope) -> str | None:
    """The path template of the route that served the request (None if none matched).

    FastAPI keeps an included router's routes with paths relative to the router's prefix
    (`/{tenant_id}/locations` under `/api/v1`), so the prefix is recovered from the path:
    it is what precedes the part the route's pattern matches. A prefix segment equal to a
    path parameter's value is written as that parameter, so no id ever reaches a label.
    """
    route = scope.get("route")
    template = getattr(route, "path", None)
    if not isinstance(template, str):
        return None
    pattern = getattr(route, "path_regex", None)
    path = str(scope.get("path", ""))
    root_path = str(scope.get("root_path", ""))
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    if not isinstance(pattern, re.Pattern) or pattern.match(path):
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


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, *, metrics: Metrics | None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
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
            route = route_template(scope)
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
