"""Fixtures and helpers for authentication tests: signing keys, a local JWKS, app builders.

Every network call stays on the loopback interface: the JWKS is served by a tiny HTTP server
on 127.0.0.1 with an ephemeral port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI

from shelfkeeper.app import create_app
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Connection, Database

PROBLEM_MEDIA_TYPE = "application/problem+json"
JWKS_PATH = "/.well-known/jwks.json"
RSA_KID = "rsa-1"
EC_KID = "ec-1"


# --- responses -------------------------------------------------------------------------


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and slug; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(f"/{slug}"), body
    assert body["status"] == status
    return body


def assert_unauthorized(response: httpx.Response) -> None:
    """401 `unauthorized` with a Bearer challenge."""
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- database --------------------------------------------------------------------------


async def count_rows(owner: Connection, table: str, tenant_id: str) -> int:
    """Rows of `table` owned by `tenant_id`, seen as the database owner (no RLS)."""
    count: int = await owner.fetchval(
        f"SELECT count(*) FROM {table} WHERE tenant_id = $1", tenant_id
    )
    return count


# --- tokens ----------------------------------------------------------------------------


def claims(
    *,
    tenant_id: str | None,
    roles: list[str],
    omit: tuple[str, ...] = (),
    **overrides: Any,
) -> dict[str, Any]:
    """Claims the built-in settings accept (issuer and audience `shelfkeeper`, 5 minutes)."""
    now = datetime.now(UTC)
    payload: dict[str, Any] = {
        "sub": "tester",
        "roles": roles,
        "iss": "shelfkeeper",
        "aud": "shelfkeeper",
        "iat": now,
        "exp": now + timedelta(minutes=5),
    }
    if tenant_id is not None:
        payload["tenant_id"] = tenant_id
    payload.update(overrides)
    for name in omit:
        del payload[name]
    return payload


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(payload: dict[str, Any], *, algorithm: str = "none") -> str:
    """A JWT with `alg` set to `algorithm` and an empty signature."""
    header = base64url(json.dumps({"alg": algorithm, "typ": "JWT"}).encode())
    body = base64url(json.dumps(payload, default=lambda value: int(value.timestamp())).encode())
    return f"{header}.{body}."


def hs256_by_hand(payload: dict[str, Any], secret: bytes, *, kid: str | None = None) -> str:
    """HS256 signed without PyJWT, which refuses PEM keys as HMAC secrets."""
    header_fields: dict[str, str] = {"alg": "HS256", "typ": "JWT"}
    if kid is not None:
        header_fields["kid"] = kid
    header = base64url(json.dumps(header_fields).encode())
    body = base64url(json.dumps(payload, default=lambda value: int(value.timestamp())).encode())
    signature = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{base64url(signature)}"


# --- keys ------------------------------------------------------------------------------


def public_pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    """The identity provider's RSA signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    """An RSA key nobody trusts."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    """The identity provider's EC P-256 signing key."""
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def other_ec_key() -> ec.EllipticCurvePrivateKey:
    """An EC P-256 key nobody trusts."""
    return ec.generate_private_key(ec.SECP256R1())


# --- a local JWKS endpoint -------------------------------------------------------------


@dataclass
class JwksServer:
    """A JWKS served on 127.0.0.1; `requests` counts the fetches of the document."""

    url: str
    document: dict[str, Any]
    requests: list[str] = field(default_factory=list)


def public_jwk(public_key: Any) -> dict[str, Any]:
    if isinstance(public_key, rsa.RSAPublicKey):
        document: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        document = jwt.algorithms.ECAlgorithm.to_jwk(public_key, as_dict=True)
    return document


@pytest.fixture(scope="session")
def jwks_server(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> Iterator[JwksServer]:
    """Serves the identity provider's RSA (`rsa-1`) and EC (`ec-1`) public keys."""
    document = {
        "keys": [
            with_kid(public_jwk(rsa_key.public_key()), kid=RSA_KID, algorithm="RS256"),
            with_kid(public_jwk(ec_key.public_key()), kid=EC_KID, algorithm="ES256"),
        ]
    }
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path != JWKS_PATH:
                self.send_error(404)
                return
            body = json.dumps(document).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    # the JWKS client (urllib) would go through a configured HTTP proxy; loopback stays local
    patch = pytest.MonkeyPatch()
    patch.setenv("no_proxy", "127.0.0.1")
    patch.setenv("NO_PROXY", "127.0.0.1")
    try:
        yield JwksServer(
            url=f"http://127.0.0.1:{port}{JWKS_PATH}", document=document, requests=requests
        )
    finally:
        patch.undo()
        server.shutdown()
        server.server_close()
        thread.join()


def with_kid(entry: dict[str, Any], *, kid: str, algorithm: str) -> dict[str, Any]:
    return {**entry, "kid": kid, "alg": algorithm, "use": "sig"}


# --- apps with other settings ----------------------------------------------------------


def settings_like(settings: Settings, **changes: Any) -> Settings:
    """New settings on the session's database and HS256 secret, with `changes` on top.

    Settings are frozen, so a copy with updates is not possible; this builds anew.
    """
    return Settings(
        database_url=settings.database_url,
        data_dir=settings.data_dir,
        jwt_secret=settings.jwt_secret,
        **changes,
    )


@asynccontextmanager
async def client_of(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://shelfkeeper.test") as c:
        yield c


@asynccontextmanager
async def client_with(
    settings: Settings, database: Database, **changes: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app built with `settings_like(settings, **changes)`."""
    app = create_app(settings_like(settings, **changes), database=database)
    async with client_of(app) as client:
        yield client
