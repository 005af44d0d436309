"""JSON Web Tokens: the built-in HS256 issuer, and verification of ours and an external IdP's.

Verification picks the key by the token's `alg` and accepts only that one algorithm for it:
HS256 with the built-in secret; RS256/ES256 with the configured public key or the key the
JWKS names by `kid`. A token signed with an algorithm outside the configured list, with
`alg: none`, with a bad signature, expired, or for another issuer or audience is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shelfkeeper.config import Settings

ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "ES256"})
REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
KEY_TYPES: dict[str, type[PublicKey]] = {
    "RS256": rsa.RSAPublicKey,
    "ES256": ec.EllipticCurvePublicKey,
}
"""The key type each asymmetric algorithm verifies with."""


class InvalidToken(Exception):
    """The token is not one we accept; the message says why (safe to show the caller)."""


def load_public_key(pem: str) -> PublicKey:
    """The identity provider's configured public key.

    Raises ValueError, at startup, when it is not an RSA or EC public key in PEM: a broken
    key must stop the service rather than refuse every token as if the tokens were at fault.
    """
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ValueError("The configured JWT public key is not a PEM public key.") from error
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("The configured JWT public key must be an RSA or EC key.")
    return key


def issue_token(
    settings: Settings,
    *,
    subject: str,
    tenant_id: str | None,
    roles: list[str],
    ttl_seconds: int | None = None,
    now: datetime | None = None,
    location_ids: Collection[UUID] | None = None,
) -> str:
    """Sign an HS256 token with the built-in issuer's key.

    `location_ids` (a store clerk's locations) becomes the `location_ids` claim: its holder
    may change stock only there.
    """
    issued_at = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "roles": roles,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": issued_at,
        "exp": issued_at + timedelta(seconds=ttl_seconds or settings.jwt_default_ttl_seconds),
    }
    if tenant_id is not None:
        claims["tenant_id"] = tenant_id
    if location_ids is not None:
        claims["location_ids"] = sorted(str(location_id) for location_id in location_ids)
    return jwt.encode(claims, settings.jwt_signing_secret, algorithm="HS256")


LEEWAY_SECONDS = 30
"""Clock skew allowed when checking `exp` (and `nbf`, `iat`)."""
VERIFIED_CACHE_SIZE = 4096
"""Verified tokens remembered per process."""


class TokenVerifier:
    """Verifies bearer JWTs according to the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.algorithms = frozenset(settings.jwt_algorithms)
        self.jwks = (
            jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300, timeout=5)
            if settings.jwt_jwks_url
            else None
        )
        self.public_key = (
            load_public_key(settings.jwt_public_key) if settings.jwt_public_key else None
        )
        self._verified: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()

    async def verify(self, token: str) -> dict[str, Any]:
        """Return the verified claims. Raises InvalidToken.

        A token verified before is answered from a small in-process cache until it expires
        (a client sends the same token with every request; checking its signature again
        cost 3 to 7% of a request in the profile, docs/benchmarks.md). Only tokens that
        verified are kept, at most `VERIFIED_CACHE_SIZE`, least recently used first out.
        """
        cached = self._verified.get(token)
        if cached is not None:
            claims, expires = cached
            if time.time() < expires:
                self._verified.move_to_end(token)
                return dict(claims)
            del self._verified[token]
        claims = await self._verify(token)
        self._verified[token] = (claims, float(claims["exp"]) + LEEWAY_SECONDS)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return dict(claims)

    async def _verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise InvalidToken("Malformed token.") from error
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self.algorithms:
            raise InvalidToken("Token algorithm not accepted.")
        key = await self._key_for(algorithm, token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError as error:
            raise InvalidToken("Token expired.") from error
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"Token rejected: {error}.") from error
        except jwt.InvalidKeyError as error:
            # The key suits the algorithm's family but not this token (an ES256 token against a
            # P-384 key): the token's fault, not the server's.
            raise InvalidToken("Token algorithm does not match the key.") from error
        return claims

    async def _key_for(self, algorithm: str, token: str) -> Any:
        if algorithm == "HS256":
            return self.settings.jwt_signing_secret
        if algorithm not in ASYMMETRIC_ALGORITHMS:
            raise InvalidToken("Token algorithm not accepted.")
        if self.jwks is not None:
            jwks = self.jwks
            try:
                signing_key = await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)
            except jwt.PyJWKClientError as error:
                raise InvalidToken("No matching key in the identity provider's JWKS.") from error
            except jwt.InvalidTokenError as error:
                raise InvalidToken("Malformed token.") from error
            # The PyJWK itself, not its bare key: PyJWT then refuses a token whose `alg` is not
            # the algorithm of the key its `kid` names (an RS256 token naming an EC key).
            return signing_key
        if self.public_key is not None:
            # PyJWT fails with a TypeError, not a token error, for a key of the wrong type.
            if not isinstance(self.public_key, KEY_TYPES[algorithm]):
                raise InvalidToken("Token algorithm does not match the configured key.")
            return self.public_key
        raise InvalidToken("No key configured for asymmetric tokens.")
