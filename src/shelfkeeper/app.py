"""The application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from shelfkeeper import __version__
from shelfkeeper.auth.endpoints import router as api_key_router
from shelfkeeper.auth.tokens import TokenVerifier
from shelfkeeper.config import Settings
from shelfkeeper.db import embedded, migrate
from shelfkeeper.db.database import Database
from shelfkeeper.inventory.endpoints import router as inventory_router
from shelfkeeper.kit import handlers
from shelfkeeper.kit.middleware import RequestContextMiddleware
from shelfkeeper.kit.problems import (
    PROBLEM_MEDIA_TYPE,
    BadRequest,
    InternalError,
    PayloadTooLarge,
    ProblemDocument,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
    problem_responses,
)
from shelfkeeper.location.endpoints import router as location_router
from shelfkeeper.tenant.endpoints import router as tenant_router

logger = logging.getLogger("shelfkeeper")

API_PREFIX = "/api/v1"
OPENAPI_URL = f"{API_PREFIX}/openapi.json"
DESCRIPTION = """
Multi-tenant inventory and order tracking.

Every error is an RFC 9457 problem document (`application/problem+json`). Every `POST` and
`PATCH` accepts an `Idempotency-Key` header. Single resources carry an `ETag`; send it back
in `If-Match` to update safely.
"""


async def open_database(settings: Settings) -> Database:
    """Connect to `DATABASE_URL`, or start, migrate and connect to the embedded PostgreSQL."""
    dsn = settings.database_url
    if dsn is None:
        server = embedded.start_embedded(settings.data_dir)
        dsn = server.get_uri()
        await asyncio.to_thread(migrate.upgrade, dsn)
    return await Database.connect(
        dsn,
        role=migrate.SERVICE_ROLE,
        min_size=settings.database_pool_min_size,
        max_size=settings.database_pool_max_size,
    )


def create_app(settings: Settings | None = None, database: Database | None = None) -> FastAPI:
    """Build the app. With `database` given, the caller owns the pool (tests do this)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if database is not None:
            app.state.database = database
            yield
            return
        app.state.database = await open_database(settings)
        try:
            yield
        finally:
            await app.state.database.close()

    app = FastAPI(
        title="Shelfkeeper",
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # Any request may be too large or meet an unexpected failure.
        responses=problem_responses(PayloadTooLarge, InternalError),
    )
    app.state.settings = settings
    app.state.token_verifier = TokenVerifier(settings)
    if database is not None:
        app.state.database = database

    api = APIRouter(
        prefix=API_PREFIX,
        # Every API operation authenticates and parses its input: a body that is not even
        # text (400), a missing or bad credential (401), a body that is not JSON (415), or
        # input that breaks the schema (422).
        responses=problem_responses(
            BadRequest, Unauthorized, UnsupportedMediaType, ValidationFailed
        ),
    )
    api.include_router(tenant_router)
    api.include_router(api_key_router)
    api.include_router(location_router)
    api.include_router(inventory_router)
    app.include_router(api)
    add_operations_routes(app)
    add_docs(app)
    handlers.install(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
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


def add_docs(app: FastAPI) -> None:
    """Swagger UI at `/docs`, its assets served from the installed package (no CDN)."""
    assets = Path(swagger_ui_bundle.swagger_ui_path)
    app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title="Shelfkeeper API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error response published as problem+json."""
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
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            for status, response in operation.get("responses", {}).items():
                if status.startswith(("4", "5")):
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": problem_ref}}
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = document
    return document
