"""Security headers on every response, the Swagger UI's own policy, HSTS over TLS only, and
CORS: off by default, on for the configured origins."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database
from shelfkeeper.kit.security import API_POLICY
from tests.conftest import TenantWorld
from tests.kit.test_request_id import responses_of_every_kind
from tests.location.factories import locations_url
from tests.observability.conftest import app_with, client_of

ORIGIN = "https://shop.example"


async def test_every_response_carries_the_security_headers(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    responses = await responses_of_every_kind(client, world, {})

    for kind, response in responses.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", kind
        assert response.headers["Referrer-Policy"] == "no-referrer", kind
        assert response.headers["X-Frame-Options"] == "DENY", kind
        assert response.headers["Content-Security-Policy"] == API_POLICY, kind
        assert response.headers["Cache-Control"] == "no-store", kind
        assert "Strict-Transport-Security" not in response.headers, kind  # plain HTTP


async def test_hsts_only_over_tls(settings: Settings, database: Database) -> None:
    app = app_with(settings, database)

    async with client_of(app, base_url="https://shelfkeeper.test") as client:
        secure = await client.get("/healthz")
    async with client_of(app) as client:
        plain = await client.get("/healthz")

    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in plain.headers


async def test_docs_page_policy_allows_only_its_own_assets_and_script(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/docs")
    asset = await client.get("/docs/assets/swagger-ui-bundle.js")

    policy = dict(
        directive.strip().split(" ", 1)
        for directive in page.headers["Content-Security-Policy"].split(";")
    )
    [inline] = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(inline.encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert policy["style-src"] == "'self'"
    assert policy["default-src"] == "'none'"
    assert policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in page.headers["Content-Security-Policy"]
    assert "unsafe-eval" not in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY"
    # the assets may be cached; API answers may not
    assert asset.status_code == 200
    assert "Cache-Control" not in asset.headers
    assert page.headers["Cache-Control"] == "no-store"


# --- CORS ---------------------------------------------------------------------------------


def preflight(origin: str, method: str = "POST") -> dict[str, str]:
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }


async def test_cors_is_off_by_default(client: httpx.AsyncClient, world: TenantWorld) -> None:
    asked = await client.options(locations_url(world.a), headers=preflight(ORIGIN))
    simple = await client.get(
        locations_url(world.a), headers=world.headers(world.a) | {"Origin": ORIGIN}
    )

    assert asked.status_code == 405
    assert simple.status_code == 200
    for response in (asked, simple):
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_answers_the_configured_origins(
    settings: Settings, database: Database, world: TenantWorld
) -> None:
    app = app_with(settings, database, cors_origins=[ORIGIN, "https://admin.example"])

    async with client_of(app) as client:
        allowed = await client.options(locations_url(world.a), headers=preflight(ORIGIN))
        refused = await client.options(
            locations_url(world.a), headers=preflight("https://evil.example")
        )
        simple = await client.get(
            locations_url(world.a), headers=world.headers(world.a) | {"Origin": ORIGIN}
        )
        stranger = await client.get(
            locations_url(world.a),
            headers=world.headers(world.a) | {"Origin": "https://evil.example"},
        )

    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    allowed_headers = allowed.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key", "if-match"):
        assert header in allowed_headers
    assert "PATCH" in allowed.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    assert "X-Request-ID" in allowed.headers  # preflights are requests like any other
    assert refused.status_code == 400
    assert "Access-Control-Allow-Origin" not in refused.headers
    assert simple.status_code == 200
    assert simple.headers["Access-Control-Allow-Origin"] == ORIGIN
    exposed = simple.headers["Access-Control-Expose-Headers"]
    for header in ("X-Request-ID", "ETag", "RateLimit-Remaining", "Retry-After"):
        assert header in exposed
    assert "Access-Control-Allow-Origin" not in stranger.headers


def test_cors_origins_setting_is_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHELFKEEPER_CORS_ORIGINS", f"{ORIGIN}, https://admin.example,")

    assert Settings().cors_origins == [ORIGIN, "https://admin.example"]
