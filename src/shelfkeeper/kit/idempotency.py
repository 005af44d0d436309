"""`Idempotency-Key` for every POST and PATCH (IETF draft `httpapi-idempotency-key-header`).

The first request with a key runs normally; its successful response is stored in the *same
transaction* as the change it made, so a stored response exists exactly when the change was
committed. A repeat with the same body within the retention period replays that response
(`Idempotent-Replayed: true`); a repeat with a different body is 422
`idempotency-key-reuse`; a repeat while the first is still running is 409
`idempotency-key-in-flight` (detected with a transaction-scoped advisory lock on the key).
Failed requests change nothing and store nothing, so a retry after a 4xx runs again.
Keys are scoped per tenant (row-level security on the table). A stored response may hold
personal data (an order's customer): when the app sets `app.state.response_sealer` (a
`ResponseSealer`), bodies are stored sealed under the tenant's data key.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request, Response

from shelfkeeper.db.database import Connection
from shelfkeeper.kit.problems import PROBLEM_MEDIA_TYPE, Problem, validation_error

HEADER = "Idempotency-Key"
METHODS = frozenset({"POST", "PATCH"})
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
REPLAYED_HEADERS = ("content-type", "etag", "location")


class IdempotencyKeyReuse(Problem):
    status = 422
    slug = "idempotency-key-reuse"
    title = "Idempotency key already used with another request"


class IdempotencyKeyInFlight(Problem):
    status = 409
    slug = "idempotency-key-in-flight"
    title = "A request with this idempotency key is still running"


class IdempotentReplay(Exception):
    """Raised to answer with the stored response of an earlier identical request."""

    def __init__(self, response: Response) -> None:
        self.response = response


class ResponseSealer(Protocol):
    """Encrypts stored response bodies at rest (the privacy domain provides one)."""

    async def seal(self, connection: Connection, *, scope: str, body: bytes) -> bytes: ...

    async def open(self, connection: Connection, *, scope: str, stored: bytes) -> bytes: ...


def _sealer(request: Request) -> ResponseSealer | None:
    sealer: ResponseSealer | None = getattr(request.app.state, "response_sealer", None)
    return sealer


@dataclass(frozen=True)
class IdempotencyClaim:
    scope: str
    key: str
    fingerprint: str


async def fingerprint(request: Request) -> str:
    """Hash of method, path, query and body; JSON bodies are canonicalised first."""
    body = await request.body()
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError):
        canonical = body
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}?{request.url.query}\n".encode())
    digest.update(canonical)
    return digest.hexdigest()


async def claim(request: Request, connection: Connection, *, scope: str) -> None:
    """Check the request's key, if it has one, within the bound transaction.

    Raises IdempotentReplay with the stored response, IdempotencyKeyReuse (422),
    IdempotencyKeyInFlight (409), or ValidationFailed (422) for a malformed key. Otherwise
    remembers the claim so that `store` records the response after the handler succeeds.
    """
    key = request.headers.get(HEADER)
    if key is None or request.method not in METHODS:
        return
    if not KEY_PATTERN.match(key):
        raise validation_error(
            ["header", HEADER], "1 to 255 printable ASCII characters.", "string_pattern_mismatch"
        )
    locked = await connection.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))", f"{scope}\n{key}"
    )
    if not locked:
        raise IdempotencyKeyInFlight("Retry once the first request has finished.")
    this_fingerprint = await fingerprint(request)
    stored = await connection.fetchrow(
        """
        SELECT fingerprint, response_status, response_headers, response_body
        FROM idempotency_key
        WHERE tenant_id = $1 AND key = $2 AND expires_at > now()
        """,
        scope,
        key,
    )
    if stored is not None:
        if stored["fingerprint"] != this_fingerprint:
            raise IdempotencyKeyReuse(
                "This key was first used with a different method, path or body."
            )
        headers: dict[str, str] = dict(stored["response_headers"])
        headers["Idempotent-Replayed"] = "true"
        body: bytes = stored["response_body"]
        sealer = _sealer(request)
        if sealer is not None:
            body = await sealer.open(connection, scope=scope, stored=body)
        raise IdempotentReplay(
            Response(
                content=body,
                status_code=stored["response_status"],
                headers=headers,
            )
        )
    request.state.idempotency = IdempotencyClaim(scope, key, this_fingerprint)


async def store(
    request: Request, connection: Connection, response: Response, *, ttl_seconds: int
) -> None:
    """Record a successful response for the request's claimed key, if it has one."""
    claimed: IdempotencyClaim | None = getattr(request.state, "idempotency", None)
    if claimed is None or response.status_code >= 400:
        return
    headers: dict[str, Any] = {
        name: value for name, value in response.headers.items() if name in REPLAYED_HEADERS
    }
    body = bytes(response.body)
    sealer = _sealer(request)
    if sealer is not None:
        body = await sealer.seal(connection, scope=claimed.scope, body=body)
    await connection.execute(
        """
        INSERT INTO idempotency_key
            (tenant_id, key, fingerprint, response_status, response_headers, response_body,
             expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
        ON CONFLICT (tenant_id, key) DO UPDATE SET
            fingerprint = EXCLUDED.fingerprint,
            response_status = EXCLUDED.response_status,
            response_headers = EXCLUDED.response_headers,
            response_body = EXCLUDED.response_body,
            created_at = now(),
            expires_at = EXCLUDED.expires_at
        """,
        claimed.scope,
        claimed.key,
        claimed.fingerprint,
        response.status_code,
        headers,
        body,
        float(ttl_seconds),
    )


async def purge_expired(connection: Connection, *, scope: str) -> int:
    """Delete the scope's stored responses past their retention; returns how many."""
    status = await connection.execute(
        "DELETE FROM idempotency_key WHERE tenant_id = $1 AND expires_at <= now()", scope
    )
    return int(status.split()[-1])


async def stored_responses(
    connection: Connection, *, scope: str
) -> AsyncIterator[tuple[str, bytes]]:
    """The scope's stored responses as (key, body as stored), read through a cursor (in the
    caller's transaction), for privacy erasure."""
    query = "SELECT key, response_body FROM idempotency_key WHERE tenant_id = $1 ORDER BY key"
    async for row in connection.cursor(query, scope, prefetch=100):
        yield row["key"], row["response_body"]


class ResponseErased(Problem):
    status = 410
    slug = "response-erased"
    title = "The stored response was erased"


async def erase_responses(connection: Connection, *, scope: str, keys: list[str]) -> int:
    """Replace the stored responses of `keys` by a 410 `response-erased` problem (their
    bodies held personal data that was erased); returns how many. The keys stay claimed,
    so a late retry of the original request is answered 410 instead of acting twice."""
    problem = ResponseErased(
        "The response to this request held personal data that has since been erased."
    )
    status = await connection.execute(
        """
        UPDATE idempotency_key
        SET response_status = $3, response_headers = $4, response_body = $5
        WHERE tenant_id = $1 AND key = ANY($2::text[])
        """,
        scope,
        keys,
        problem.status,
        {"content-type": PROBLEM_MEDIA_TYPE},
        json.dumps(problem.document(None)).encode(),
    )
    return int(status.split()[-1])


async def forget(connection: Connection, *, scope: str) -> int:
    """Delete every stored response of the scope (offboarding); returns how many."""
    status = await connection.execute("DELETE FROM idempotency_key WHERE tenant_id = $1", scope)
    return int(status.split()[-1])
