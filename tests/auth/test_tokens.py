"""Bearer JWTs from the built-in HS256 issuer: what is accepted and every way to be refused.

Each refusal is a 401 `unauthorized` problem with a `WWW-Authenticate: Bearer` challenge,
and reaches neither the tenant nor the database.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from shelfkeeper.auth.tokens import LEEWAY_SECONDS, TokenVerifier, issue_token
from shelfkeeper.config import Settings
from tests.auth.conftest import assert_unauthorized, bearer, claims, unsigned_token
from tests.conftest import JWT_SECRET, TenantWorld

OTHER_SECRET = "another-secret-0123456789abcdef0123456789abcdef"


def hs256(payload: dict[str, object], secret: str = JWT_SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def locations(tenant_id: str) -> str:
    return f"/api/v1/{tenant_id}/locations"


async def test_valid_token_reads_the_tenant(client: httpx.AsyncClient, world: TenantWorld) -> None:
    # given
    token = hs256(claims(tenant_id=world.a, roles=["viewer"]))

    # when
    response = await client.get(locations(world.a), headers=bearer(token))

    # then
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}


async def test_token_from_the_token_fixture_is_accepted(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.get(locations(world.a), headers=world.headers(world.a, "viewer"))

    assert response.status_code == 200, response.text


async def test_expired_token_is_refused(client: httpx.AsyncClient, world: TenantWorld) -> None:
    # given: expired an hour ago, far beyond any clock-skew leeway
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    token = hs256(
        claims(
            tenant_id=world.a,
            roles=["admin"],
            iat=an_hour_ago - timedelta(minutes=5),
            exp=an_hour_ago,
        )
    )

    # when
    response = await client.get(locations(world.a), headers=bearer(token))

    # then
    assert_unauthorized(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert response.json()["detail"] == "Token expired."


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iss", "https://someone-else.example"),
        ("aud", "another-service"),
        ("aud", ["another-service", "and-another"]),
    ],
)
async def test_token_for_another_issuer_or_audience_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, claim: str, value: object
) -> None:
    token = hs256(claims(tenant_id=world.a, roles=["admin"]) | {claim: value})

    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


async def test_audience_list_containing_ours_is_accepted(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    token = hs256(claims(tenant_id=world.a, roles=["admin"], aud=["other", "shelfkeeper"]))

    response = await client.get(locations(world.a), headers=bearer(token))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
async def test_token_missing_a_required_claim_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, claim: str
) -> None:
    token = hs256(claims(tenant_id=world.a, roles=["admin"], omit=(claim,)))

    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


async def test_token_signed_with_another_secret_is_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    token = hs256(claims(tenant_id=world.a, roles=["admin"]), secret=OTHER_SECRET)

    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


async def test_token_with_a_tampered_payload_is_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    # given: a viewer's valid token whose payload is swapped for an admin's
    viewer = hs256(claims(tenant_id=world.a, roles=["viewer"]))
    admin = hs256(claims(tenant_id=world.a, roles=["admin"]))
    header, _, signature = viewer.split(".")
    forged = f"{header}.{admin.split('.')[1]}.{signature}"

    # when
    response = await client.get(locations(world.a), headers=bearer(forged))

    # then
    assert_unauthorized(response)


@pytest.mark.parametrize("algorithm", ["none", "None", "NONE"])
async def test_unsigned_token_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, algorithm: str
) -> None:
    token = unsigned_token(claims(tenant_id=world.a, roles=["admin"]), algorithm=algorithm)

    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)
    assert response.json()["detail"] == "Token algorithm not accepted."


async def test_unsigned_token_with_a_copied_signature_is_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    valid = hs256(claims(tenant_id=world.a, roles=["admin"]))
    token = unsigned_token(claims(tenant_id=world.a, roles=["admin"])) + valid.split(".")[2]

    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "not.a.jwt",
        "a.b.c.d",
        "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln",
        "W10.e30.",
        "Bearer",
        "x" * 4000,
    ],
)
async def test_garbage_token_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, token: str
) -> None:
    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


async def test_no_authorization_header_is_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.get(locations(world.a))

    assert_unauthorized(response)
    assert response.headers["www-authenticate"] == 'Bearer realm="shelfkeeper"'


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dGVzdGVyOnNlY3JldA==",
        "Token {token}",
        "{token}",
        "Bearer",
        "Bearer ",
    ],
)
async def test_authorization_without_a_bearer_token_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, authorization: str
) -> None:
    # given: even a valid token is refused when it is not presented as a Bearer token
    token = hs256(claims(tenant_id=world.a, roles=["admin"]))

    # when
    response = await client.get(
        locations(world.a), headers={"Authorization": authorization.format(token=token)}
    )

    # then
    assert_unauthorized(response)


async def test_bearer_scheme_is_case_insensitive(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    token = hs256(claims(tenant_id=world.a, roles=["admin"]))

    response = await client.get(locations(world.a), headers={"Authorization": f"bearer {token}"})

    assert response.status_code == 200, response.text


async def test_missing_token_is_401_even_for_an_unknown_tenant(client: httpx.AsyncClient) -> None:
    # authentication comes first: an anonymous caller learns nothing about which tenants exist
    response = await client.get(locations("no-such-tenant"))

    assert_unauthorized(response)


async def test_platform_routes_refuse_invalid_tokens(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    token = hs256(claims(tenant_id=None, roles=["platform_admin"]), secret=OTHER_SECRET)

    anonymous = await client.get("/api/v1/tenants")
    forged = await client.get("/api/v1/tenants", headers=bearer(token))

    assert_unauthorized(anonymous)
    assert_unauthorized(forged)


async def test_token_not_yet_valid_is_refused(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    an_hour_ahead = datetime.now(UTC) + timedelta(hours=1)
    token = hs256(claims(tenant_id=world.a, roles=["admin"], nbf=an_hour_ahead))

    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


@pytest.mark.parametrize(
    "malformed",
    [
        {"roles": "admin"},
        {"roles": [1, 2]},
        {"tenant_id": 123},
        {"tenant_id": ["a", "b"]},
    ],
)
async def test_token_with_malformed_claims_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, malformed: dict[str, object]
) -> None:
    token = hs256(claims(tenant_id=world.a, roles=["admin"]) | malformed)

    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


async def test_a_verified_token_is_remembered_until_it_expires(settings: Settings) -> None:
    verifier = TokenVerifier(settings)
    token = issue_token(
        settings, subject="cached", tenant_id="acme", roles=["admin"], ttl_seconds=60
    )

    first = await verifier.verify(token)
    first["roles"] = ["tampered"]  # callers get copies: the cache cannot be changed
    again = await verifier.verify(token)

    assert (again["sub"], again["roles"]) == ("cached", ["admin"])
    claims, expires = verifier._verified[token]
    assert expires == claims["exp"] + LEEWAY_SECONDS
    # an entry past its time is not used: the token is verified again
    verifier._verified[token] = ({**claims, "sub": "stale"}, time.time() - 1)
    assert (await verifier.verify(token))["sub"] == "cached"
