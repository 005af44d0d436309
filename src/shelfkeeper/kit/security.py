"""Security headers on every response.

- `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`.
- `Content-Security-Policy`: the strict `API_POLICY` unless the response brings its own (the
  Swagger UI page at `/docs` does: it needs its scripts and styles, all served locally).
- `Cache-Control: no-store` unless the response sets its own caching or its path is one
  of `cacheable_prefixes` (the static assets of `/docs`): API answers hold tenant data that
  no shared cache and no browser cache should keep.
- `Strict-Transport-Security` only on requests that arrived over TLS (scope scheme
  `https`): served by uvicorn with `--ssl-certfile`. Behind a proxy that terminates TLS the
  proxy is the one to send it.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""JSON needs nothing: no scripts, no styles, no frames, nothing to load."""

HSTS = "max-age=31536000"
"""One year. Without `includeSubDomains`: the service cannot know the domain's other hosts."""

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, *, cacheable_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.cacheable_prefixes = cacheable_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        over_tls = scope.get("scheme") == "https"
        cacheable = str(scope.get("path", "")).startswith(self.cacheable_prefixes)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers[name] = value
                if "content-security-policy" not in headers:
                    headers["Content-Security-Policy"] = API_POLICY
                if not cacheable and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
                if over_tls:
                    headers["Strict-Transport-Security"] = HSTS
            await send(message)

        await self.app(scope, receive, send_with_headers)
