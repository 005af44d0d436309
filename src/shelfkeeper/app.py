"""The application factory."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from shelfkeeper import __version__, background, maintenance, monitoring
from shelfkeeper.audit import endpoints as audit_endpoints
from shelfkeeper.auth.dependencies import authenticate_request
from shelfkeeper.auth.endpoints import router as api_key_router
from shelfkeeper.auth.tokens import TokenVerifier
from shelfkeeper.config import Settings
from shelfkeeper.db import embedded, migrate
from shelfkeeper.db.database import Database
from shelfkeeper.event.endpoints import router as event_router
from shelfkeeper.event.endpoints import stream_router as event_stream_router
from shelfkeeper.event.webhook_endpoints import router as webhook_router
from shelfkeeper.inventory.coalescer import ReservationCoalescer
from shelfkeeper.inventory.endpoints import router as inventory_router
from shelfkeeper.inventory.reservation_endpoints import router as reservation_router
from shelfkeeper.kit import handlers, idempotency
from shelfkeeper.kit.middleware import RequestContextMiddleware
from shelfkeeper.kit.problems import (
    PROBLEM_MEDIA_TYPE,
    BadRequest,
    InternalError,
    PayloadTooLarge,
    Problem,
    ProblemDocument,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from shelfkeeper.kit.ratelimit import Quota, RateLimiter
from shelfkeeper.kit.routing import include_flat
from shelfkeeper.kit.security import SecurityHeadersMiddleware
from shelfkeeper.location.endpoints import router as location_router
from shelfkeeper.observability import metrics as observability_metrics
from shelfkeeper.observability import tracing
from shelfkeeper.observability.logging import configure_structlog
from shelfkeeper.observability.middleware import ObservabilityMiddleware
from shelfkeeper.order.endpoints import router as order_router
from shelfkeeper.order.integration_endpoints import callback_router as integration_callback_router
from shelfkeeper.order.integration_endpoints import router as integration_router
from shelfkeeper.privacy import service as privacy_service
from shelfkeeper.privacy.endpoints import router as privacy_router
from shelfkeeper.tenant.endpoints import export_router as tenant_export_router
from shelfkeeper.tenant.endpoints import router as tenant_router

logger = logging.getLogger("shelfkeeper")

API_PREFIX = "/api/v1"
OPENAPI_URL = f"{API_PREFIX}/openapi.json"
DOCS_ASSETS = "/docs/assets"
CORS_ALLOWED_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "If-Match",
    "If-None-Match",
    "X-Request-ID",
]
CORS_EXPOSED_HEADERS = [
    "ETag",
    "Location",
    "Idempotent-Replayed",
    "X-Request-ID",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
]
DESCRIPTION = """
Multi-tenant inventory and order tracking.

Every error is an RFC 9457 problem document (`application/problem+json`). Every `POST` and
`PATCH` accepts an `Idempotency-Key` header. Single resources carry an `ETag`; send it back
in `If-Match` to update safely.
"""


async def open_database(settings: Settings) -> tuple[Database, embedded.EmbeddedServer | None]:
    """Connect to `DATABASE_URL`, or start, migrate and connect to the embedded PostgreSQL.

    Returns the embedded server too (None with `DATABASE_URL`), for `stop_embedded`.
    """
    dsn = settings.database_url
    server = None
    if dsn is None:
        server = embedded.start_embedded(settings.data_dir)
        dsn = server.get_uri()
        await asyncio.to_thread(migrate.upgrade, dsn)
    database = await Database.connect(
        dsn,
        role=migrate.SERVICE_ROLE,
        min_size=settings.database_pool_min_size,
        max_size=settings.database_pool_max_size,
    )
    return database, server


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app. With `database` given, the caller owns the pool (tests do this)."""
    settings = settings or Settings()
    configure_structlog()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with database_lifetime(app):
                yield
        finally:
            await app.state.rate_limiter.close()
            if app.state.tracer_provider is not None:
                tracing.shutdown_tracing(app.state.tracer_provider)

    @asynccontextmanager
    async def database_lifetime(app: FastAPI) -> AsyncIterator[None]:
        if database is not None:
            app.state.database = database
            yield
            return
        app.state.database, server = await open_database(settings)
        rounds = (
            await Database.connect(
                app.state.database.dsn,
                role=migrate.SERVICE_ROLE,
                min_size=1,
                max_size=settings.stock_coalescing_pool_size,
            )
            if settings.stock_coalescing
            else None
        )
        if rounds is not None:
            # Its own pool: the requests waiting for a round may hold every connection of
            # the request pool.
            app.state.coalescer = ReservationCoalescer(rounds)
        housekeeping = (
            asyncio.create_task(
                maintenance.run_forever(
                    app.state.database, interval_seconds=settings.maintenance_interval_seconds
                )
            )
            if settings.maintenance_interval_seconds > 0
            else None
        )
        relay_stop = asyncio.Event()
        relaying = (
            asyncio.create_task(background.run(app.state.database, settings, stop=relay_stop))
            if settings.relay_enabled
            else None
        )
        try:
            yield
        finally:
            if relaying is not None:
                relay_stop.set()
                with contextlib.suppress(Exception):
                    await relaying
            if housekeeping is not None:
                housekeeping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await housekeeping
            if rounds is not None:
                await rounds.close()
            await app.state.database.close()
            if server is not None:
                embedded.stop_embedded(server)

    app = FastAPI(
        title="Shelfkeeper",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    app.state.authenticator = authenticate_request
    app.state.rate_limiter = RateLimiter(
        default=Quota(settings.rate_limit_per_second, settings.rate_limit_burst),
        redis_url=settings.redis_url,
    )
    app.state.metrics = observability_metrics.Metrics(
        tenant_labels=settings.metrics_tenant_labels,
        pool=lambda: getattr(getattr(app.state, "database", None), "pool", None),
        sampler=lambda: monitoring.sample(app.state.database),
    )
    if database is not None:
        app.state.database = database

    for router in (
        tenant_router,
        api_key_router,
        location_router,
        inventory_router,
        reservation_router,
        order_router,
        integration_router,
        integration_callback_router,
        event_router,
        event_stream_router,
        webhook_router,
        audit_endpoints.router,
        privacy_router,
        tenant_export_router,
    ):
        include_flat(app.router, router, prefix=API_PREFIX)
    app.state.auditor = audit_endpoints.audit_request
    app.state.response_sealer = privacy_service.IdempotentResponses()
    privacy_service.use_master_key(settings)
    add_operations_routes(app)
    add_docs(app)
    handlers.install(app)
    # Outermost last: observability sees every response (and times all of it), security
    # headers go on every response, request ids on every response including preflights.
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=CORS_ALLOWED_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            allow_credentials=False,  # bearer tokens, no cookies
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware, cacheable_prefixes=(DOCS_ASSETS + "/",))
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics)
    app.state.tracer_provider = (
        tracing.configure_tracing(
            app, endpoint=settings.otlp_endpoint, service_name=settings.otel_service_name
        )
        if settings.otlp_endpoint
        else None
    )
    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def add_operations_routes(app: FastAPI) -> None:
    @app.get("/healthz", tags=["Operations"], summary="The process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["Operations"],
        summary="The database answers",
        responses={503: {"model": ProblemDocument, "description": "Database unreachable"}},
    )
    async def readyz() -> JSONResponse:
        database: Database = app.state.database
        try:
            async with asyncio.timeout(2):
                await database.pool.fetchval("SELECT 1")
        except (OSError, TimeoutError, Exception) as error:
            logger.warning("readiness check failed: %s", type(error).__name__)
            body = {
                "type": "https://shelfkeeper.dev/problems/not-ready",
                "title": "Not ready",
                "status": 503,
                "detail": "The database does not answer.",
            }
            return JSONResponse(body, status_code=503, media_type=PROBLEM_MEDIA_TYPE)
        return JSONResponse({"status": "ready"})

    @app.get(
        "/metrics",
        tags=["Operations"],
        summary="Prometheus metrics",
        description="The Prometheus text format. Unauthenticated unless "
        "`SHELFKEEPER_METRICS_TOKEN` is set; then it needs `Authorization: Bearer <token>`.",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
            401: {"model": ProblemDocument, "description": "`unauthorized`: token required"},
        },
    )
    async def metrics(request: Request) -> Response:
        settings: Settings = app.state.settings
        if settings.metrics_token is not None:
            expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
            offered = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(offered, expected):
                return Unauthorized().response(request.url.path)
        registry: observability_metrics.Metrics = app.state.metrics
        await registry.refresh()
        return Response(registry.render(), media_type=observability_metrics.CONTENT_TYPE)


def add_docs(app: FastAPI) -> None:
    """Swagger UI at `/docs`, its assets served from the installed package (no CDN).

    The page gets a Content-Security-Policy of its own: scripts, styles and images from
    this origin only, plus the page's one inline script, allowed by its hash.
    """
    assets = Path(swagger_ui_bundle.swagger_ui_path)
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title="Shelfkeeper API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        # Swagger UI would otherwise send the document to validator.swagger.io.
        swagger_ui_parameters={"validatorUrl": None},
    )
    policy = docs_content_security_policy(bytes(page.body).decode())

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page.body, headers={"Content-Security-Policy": policy})


def docs_content_security_policy(html: str) -> str:
    """A policy allowing what the Swagger UI page `html` needs, and its inline scripts."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    ]
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *hashes]),
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": "Makes a retry safe: a repeat with the same key and body within 24 hours "
    "replays the first response (with `Idempotent-Replayed: true`) instead of acting twice. "
    "Keys are scoped to the tenant.",
    # `idempotency.KEY_PATTERN`: 1 to 255 printable ASCII characters.
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]{1,255}$"},
}

EVERY_OPERATION_PROBLEMS: tuple[type[Problem], ...] = (PayloadTooLarge, InternalError)
"""Any request may be too large (413, by `Content-Length`) or meet an unexpected failure."""
API_PROBLEMS: tuple[type[Problem], ...] = (Unauthorized, ValidationFailed)
"""Every API operation authenticates (401) and validates its parameters (422)."""
BODY_PROBLEMS: tuple[type[Problem], ...] = (BadRequest, UnsupportedMediaType, ValidationFailed)
"""An operation with a JSON body may find it unreadable (400), not JSON (415) or invalid (422)."""
IDEMPOTENT_PROBLEMS: tuple[type[Problem], ...] = (
    idempotency.IdempotencyKeyInFlight,
    idempotency.IdempotencyKeyReuse,
)


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, completed with what no endpoint declares itself.

    The problems every operation may answer are added here, in one place: FastAPI merges
    router-level and endpoint-level `responses` by status, so an endpoint's own 404 or 422
    would hide the shared ones. `POST` and `PATCH` operations of the API also declare the
    `Idempotency-Key` header (handled by the route class) and its problems. Every error
    response is published as `application/problem+json`.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        servers=[{"url": "/"}],
    )
    problem_ref = {"$ref": "#/components/schemas/ProblemDocument"}
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            problems = list(EVERY_OPERATION_PROBLEMS)
            if path.startswith(API_PREFIX + "/"):
                problems += API_PROBLEMS
                if "requestBody" in operation:
                    problems += BODY_PROBLEMS
                # `security: []` marks an operation authenticated otherwise (a signed
                # callback): no bearer token, no Idempotency-Key (it has `webhook-id`).
                if method in ("post", "patch") and operation.get("security") != []:
                    operation.setdefault("parameters", []).append(IDEMPOTENCY_KEY_PARAMETER)
                    problems += IDEMPOTENT_PROBLEMS
            for problem in problems:
                mention_problem(responses, problem)
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
            operation["responses"] = dict(sorted(responses.items()))
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document


def mention_problem(responses: dict[str, Any], problem: type[Problem]) -> None:
    """Add `problem` to the description of its status's response (creating the response)."""
    response = responses.setdefault(str(problem.status), {"description": ""})
    description = response.get("description") or ""
    if description == "Validation Error":  # FastAPI's own wording for its 422
        description = ""
    if f"`{problem.slug}`" not in description:
        mention = f"`{problem.slug}`: {problem.title}"
        response["description"] = " / ".join(filter(None, [description, mention]))
