"""JWTs from an external identity provider: RS256/ES256 via a configured public key or a JWKS.

Keys are generated per session; the JWKS is served on 127.0.0.1 (see `conftest.jwks_server`).
"""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shelfkeeper.app import create_app
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database
from tests.auth.conftest import (
    EC_KID,
    RSA_KID,
    JwksServer,
    assert_unauthorized,
    bearer,
    claims,
    client_with,
    hs256_by_hand,
    public_pem,
    settings_like,
)
from tests.conftest import JWT_SECRET, TenantWorld

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def signed(
    payload: dict[str, Any], key: PrivateKey | str, algorithm: str, *, kid: str | None = None
) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


def locations(tenant_id: str) -> str:
    return f"/api/v1/{tenant_id}/locations"


# --- a configured RSA public key -------------------------------------------------------


async def test_public_key_accepts_rs256_signed_by_its_private_key(
    settings: Settings, database: Database, world: TenantWorld, rsa_key: rsa.RSAPrivateKey
) -> None:
    # given
    token = signed(claims(tenant_id=world.a, roles=["viewer"]), rsa_key, "RS256")

    # when
    async with client_with(settings, database, jwt_public_key=public_pem(rsa_key)) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    # then
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}


async def test_public_key_refuses_rs256_signed_by_another_key(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
) -> None:
    token = signed(claims(tenant_id=world.a, roles=["admin"]), other_rsa_key, "RS256")

    async with client_with(settings, database, jwt_public_key=public_pem(rsa_key)) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


async def test_public_key_app_still_accepts_built_in_hs256(
    settings: Settings, database: Database, world: TenantWorld, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(tenant_id=world.a, roles=["viewer"]), JWT_SECRET, algorithm="HS256")

    async with client_with(settings, database, jwt_public_key=public_pem(rsa_key)) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert response.status_code == 200, response.text


async def test_public_key_refuses_expired_and_foreign_audience_rs256(
    settings: Settings, database: Database, world: TenantWorld, rsa_key: rsa.RSAPrivateKey
) -> None:
    expired = signed(
        claims(tenant_id=world.a, roles=["admin"], iat=1_000_000_000, exp=1_000_000_600),
        rsa_key,
        "RS256",
    )
    foreign = signed(claims(tenant_id=world.a, roles=["admin"], aud="elsewhere"), rsa_key, "RS256")

    async with client_with(settings, database, jwt_public_key=public_pem(rsa_key)) as client:
        expired_response = await client.get(locations(world.a), headers=bearer(expired))
        foreign_response = await client.get(locations(world.a), headers=bearer(foreign))

    assert_unauthorized(expired_response)
    assert_unauthorized(foreign_response)


async def test_es256_token_against_an_rsa_public_key_is_refused(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    # given: the token picks an algorithm the configured key cannot verify
    token = signed(claims(tenant_id=world.a, roles=["admin"]), ec_key, "ES256")

    # when
    async with client_with(settings, database, jwt_public_key=public_pem(rsa_key)) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    # then: a refused token, not a server error
    assert_unauthorized(response)


async def test_ec_public_key_accepts_es256_and_refuses_rs256(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    es256 = signed(claims(tenant_id=world.a, roles=["viewer"]), ec_key, "ES256")
    rs256 = signed(claims(tenant_id=world.a, roles=["viewer"]), rsa_key, "RS256")

    async with client_with(settings, database, jwt_public_key=public_pem(ec_key)) as client:
        accepted = await client.get(locations(world.a), headers=bearer(es256))
        refused = await client.get(locations(world.a), headers=bearer(rs256))

    assert accepted.status_code == 200, accepted.text
    assert_unauthorized(refused)


async def test_es256_token_against_a_p384_public_key_is_refused(
    settings: Settings, database: Database, world: TenantWorld
) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    token = signed(
        claims(tenant_id=world.a, roles=["admin"]), ec.generate_private_key(ec.SECP256R1()), "ES256"
    )

    async with client_with(settings, database, jwt_public_key=public_pem(p384)) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


@pytest.mark.parametrize("configured", ["not a key", "private"])
def test_a_broken_public_key_stops_the_app_from_starting(
    settings: Settings, database: Database, rsa_key: rsa.RSAPrivateKey, configured: str
) -> None:
    if configured == "private":
        configured = rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    with pytest.raises(ValueError, match="not a PEM public key"):
        create_app(settings_like(settings, jwt_public_key=configured), database=database)


async def test_asymmetric_token_without_a_configured_key_is_refused(
    client: httpx.AsyncClient, world: TenantWorld, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = signed(claims(tenant_id=world.a, roles=["admin"]), rsa_key, "RS256")

    response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


# --- algorithm confusion and the algorithm allow-list ----------------------------------


async def test_hs256_signed_with_the_public_key_as_secret_is_refused(
    settings: Settings, database: Database, world: TenantWorld, rsa_key: rsa.RSAPrivateKey
) -> None:
    # given: the classic confusion attack, the public PEM used as an HMAC secret
    pem = public_pem(rsa_key)
    token = hs256_by_hand(claims(tenant_id=world.a, roles=["admin"]), pem.encode())

    # when
    async with client_with(settings, database, jwt_public_key=pem) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    # then
    assert_unauthorized(response)


async def test_hs256_signed_with_the_public_key_as_secret_is_refused_with_jwks(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    rsa_key: rsa.RSAPrivateKey,
    jwks_server: JwksServer,
) -> None:
    pem = public_pem(rsa_key)
    token = hs256_by_hand(claims(tenant_id=world.a, roles=["admin"]), pem.encode(), kid=RSA_KID)

    async with client_with(settings, database, jwt_jwks_url=jwks_server.url) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


async def test_algorithm_outside_the_configured_list_is_refused(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    # given: only RS256 is configured; a built-in HS256 token and an ES256 token are valid
    # in every other respect
    hs256 = jwt.encode(claims(tenant_id=world.a, roles=["admin"]), JWT_SECRET, algorithm="HS256")
    es256 = signed(claims(tenant_id=world.a, roles=["admin"]), ec_key, "ES256")
    rs256 = signed(claims(tenant_id=world.a, roles=["admin"]), rsa_key, "RS256")

    # when
    async with client_with(
        settings, database, jwt_public_key=public_pem(rsa_key), jwt_algorithms=["RS256"]
    ) as client:
        refused_hs256 = await client.get(locations(world.a), headers=bearer(hs256))
        refused_es256 = await client.get(locations(world.a), headers=bearer(es256))
        accepted = await client.get(locations(world.a), headers=bearer(rs256))

    # then
    assert_unauthorized(refused_hs256)
    assert refused_hs256.json()["detail"] == "Token algorithm not accepted."
    assert_unauthorized(refused_es256)
    assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize("algorithm", ["RS384", "RS512", "PS256"])
async def test_rsa_algorithms_other_than_rs256_are_refused(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    rsa_key: rsa.RSAPrivateKey,
    algorithm: str,
) -> None:
    token = signed(claims(tenant_id=world.a, roles=["admin"]), rsa_key, algorithm)

    async with client_with(
        settings,
        database,
        jwt_public_key=public_pem(rsa_key),
        jwt_algorithms=["HS256", "RS256", "ES256", algorithm],
    ) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


# --- a JWKS ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "kid", "key_fixture"),
    [("ES256", EC_KID, "ec_key"), ("RS256", RSA_KID, "rsa_key")],
)
async def test_jwks_accepts_tokens_whose_kid_it_lists(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    jwks_server: JwksServer,
    request: pytest.FixtureRequest,
    algorithm: str,
    kid: str,
    key_fixture: str,
) -> None:
    # given
    key: PrivateKey = request.getfixturevalue(key_fixture)
    token = signed(claims(tenant_id=world.a, roles=["viewer"]), key, algorithm, kid=kid)

    # when
    async with client_with(settings, database, jwt_jwks_url=jwks_server.url) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    # then
    assert response.status_code == 200, response.text
    assert response.json() == {"data": [], "next_cursor": None}


async def test_jwks_is_fetched_once_for_many_tokens(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    jwks_server: JwksServer,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    # given
    token = signed(claims(tenant_id=world.a, roles=["viewer"]), ec_key, "ES256", kid=EC_KID)
    fetched_before = len(jwks_server.requests)

    # when
    async with client_with(settings, database, jwt_jwks_url=jwks_server.url) as client:
        statuses = [
            (await client.get(locations(world.a), headers=bearer(token))).status_code
            for _ in range(3)
        ]

    # then
    assert statuses == [200, 200, 200]
    assert len(jwks_server.requests) - fetched_before == 1


async def test_jwks_refuses_an_unknown_kid(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    jwks_server: JwksServer,
    other_ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    token = signed(claims(tenant_id=world.a, roles=["admin"]), other_ec_key, "ES256", kid="ec-9")

    async with client_with(settings, database, jwt_jwks_url=jwks_server.url) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)
    assert response.json()["detail"] == "No matching key in the identity provider's JWKS."


async def test_jwks_refuses_a_token_without_kid(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    jwks_server: JwksServer,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    token = signed(claims(tenant_id=world.a, roles=["admin"]), ec_key, "ES256")

    async with client_with(settings, database, jwt_jwks_url=jwks_server.url) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


async def test_jwks_refuses_a_known_kid_signed_by_another_key(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    jwks_server: JwksServer,
    other_ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    token = signed(claims(tenant_id=world.a, roles=["admin"]), other_ec_key, "ES256", kid=EC_KID)

    async with client_with(settings, database, jwt_jwks_url=jwks_server.url) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert_unauthorized(response)


@pytest.mark.parametrize(
    ("algorithm", "kid", "key_fixture"),
    [("RS256", EC_KID, "rsa_key"), ("ES256", RSA_KID, "ec_key")],
)
async def test_jwks_refuses_an_algorithm_that_does_not_match_the_kids_key(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    jwks_server: JwksServer,
    request: pytest.FixtureRequest,
    algorithm: str,
    kid: str,
    key_fixture: str,
) -> None:
    # given: the header names a key of the other type than its `alg`
    key: PrivateKey = request.getfixturevalue(key_fixture)
    token = signed(claims(tenant_id=world.a, roles=["admin"]), key, algorithm, kid=kid)

    # when
    async with client_with(settings, database, jwt_jwks_url=jwks_server.url) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    # then: a refused token, not a server error
    assert_unauthorized(response)


async def test_jwks_token_for_another_tenant_is_a_tenant_mismatch(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    jwks_server: JwksServer,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    token = signed(claims(tenant_id=world.b, roles=["admin"]), ec_key, "ES256", kid=EC_KID)

    async with client_with(settings, database, jwt_jwks_url=jwks_server.url) as client:
        response = await client.get(locations(world.a), headers=bearer(token))

    assert response.status_code == 403, response.text
    assert response.json()["type"].endswith("/tenant-mismatch")
