"""FastAPI dependencies that authenticate the caller, enter its tenant and check its role.

Order for a tenant-scoped request: credential → principal (401) → the path's tenant must be
the credential's (403 `tenant-mismatch`) → the transaction is bound to that tenant and the
tenant must be active → the tenant's rate limit is counted (429 `rate-limited`) → the role
must grant the endpoint's permission (403 `forbidden`) → the request's `Idempotency-Key`,
if any, is claimed.

The actor (once authenticated) and the tenant (once entered) are bound to the request's
log lines and its access line (`kit.context`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shelfkeeper.auth import api_key
from shelfkeeper.auth import service as auth_service
from shelfkeeper.auth.principal import Permission, Principal, Role
from shelfkeeper.auth.tokens import InvalidToken, TokenVerifier
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database, bind_tenant
from shelfkeeper.kit import context, idempotency, ratelimit
from shelfkeeper.kit.problems import Forbidden, TenantMismatch, Unauthorized, problem_responses
from shelfkeeper.kit.routing import connection_of
from shelfkeeper.tenant import service as tenant_service

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT or API key",
    description="A JWT (built-in HS256 issuer or the configured identity provider) "
    "or a tenant API key (`sk_...`).",
)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build the principal of verified JWT claims. Raises Unauthorized for malformed claims.

    An optional `location_ids` claim (a list of location ids; a store clerk's) limits where
    the principal may change stock; absent or null, it may change stock anywhere.
    """
    subject = claims.get("sub")
    tenant_id = claims.get("tenant_id")
    roles = claims.get("roles", [])
    if (
        not isinstance(subject, str)
        or not (tenant_id is None or isinstance(tenant_id, str))
        or not isinstance(roles, list)
        or not all(isinstance(role, str) for role in roles)
    ):
        raise Unauthorized("Token claims `sub`, `tenant_id` or `roles` are malformed.")
    known = frozenset(Role(role) for role in roles if role in Role.__members__.values())
    claimed_locations = claims.get("location_ids")
    location_ids: frozenset[UUID] | None = None
    if claimed_locations is not None:
        malformed = Unauthorized("Token claim `location_ids` must be a list of location ids.")
        if not isinstance(claimed_locations, list) or not all(
            isinstance(value, str) for value in claimed_locations
        ):
            raise malformed
        try:
            location_ids = frozenset(UUID(value) for value in claimed_locations)
        except ValueError as error:
            raise malformed from error
    return Principal(
        subject=subject,
        tenant_id=tenant_id,
        roles=known,
        credential="jwt",
        location_ids=location_ids,
    )


async def principal_for_token(request: Request, token: str) -> Principal:
    """The principal a bearer token stands for. Raises Unauthorized (401)."""
    if api_key.looks_like_key(token):
        principal = await auth_service.authenticate(connection_of(request), token)
        if principal is None:
            raise Unauthorized("Unknown or revoked API key.")
        return principal
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        claims = await verifier.verify(token)
    except InvalidToken as error:
        raise Unauthorized(str(error)) from error
    return principal_from_claims(claims)


async def authenticate_request(request: Request) -> Principal:
    """Authenticate before anything else looks at the request.

    `TransactionalRoute` calls this (as `app.state.authenticator`) right after opening the
    transaction, so a request without a valid credential gets 401 before its content type or
    body are judged (415, 422).
    """
    credentials = await bearer(request)
    if credentials is None:
        raise Unauthorized()
    principal = await principal_for_token(request, credentials.credentials)
    context.bind(request, actor=principal.actor)
    return principal


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The caller's principal. Raises Unauthorized (401, with `WWW-Authenticate: Bearer`)."""
    authenticated: Principal | None = getattr(request.state, "principal", None)
    if authenticated is not None:
        return authenticated
    if credentials is None:
        raise Unauthorized()
    principal = await principal_for_token(request, credentials.credentials)
    context.bind(request, actor=principal.actor)
    return principal


async def tenant_principal(
    request: Request,
    tenant_id: Annotated[str, Path(description="The tenant's id (slug).", examples=["acme"])],
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal of a tenant-scoped request, with the transaction bound to the tenant
    (`enter_tenant`).

    The principal is the one `TransactionalRoute` authenticated before the dependencies
    run (`authenticate_request`), read here rather than through `authenticate`: each
    level of dependencies costs FastAPI a solve on every request. `bearer` stays a
    dependency so that the OpenAPI document names the scheme.
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        principal = await authenticate_request(request)
    return await enter_tenant(request, tenant_id, principal)


async def enter_tenant(request: Request, tenant_id: str, principal: Principal) -> Principal:
    """Check that `principal` belongs to `tenant_id`, bind the request's transaction to the
    tenant and count the request against the tenant's rate limit (its own, or the service
    default): raises Forbidden, TenantMismatch, TenantNotFound, TenantSuspended or
    RateLimited (429) when it is spent."""
    if principal.tenant_id is None:
        raise Forbidden("Platform credentials carry no tenant; use a tenant's token.")
    if principal.tenant_id != tenant_id:
        raise TenantMismatch(f"This credential belongs to tenant `{principal.tenant_id}`.")
    context.bind(request, tenant=tenant_id)
    rate_limit = await tenant_service.enter(connection_of(request), tenant_id)
    quota = (
        None
        if rate_limit is None
        else ratelimit.Quota(rate_limit.requests_per_second, rate_limit.burst)
    )
    await ratelimit.enforce(request, key=tenant_id, quota=quota)
    return principal


async def tenant_connection(
    request: Request, _: Annotated[Principal, Depends(tenant_principal)]
) -> Connection:
    return connection_of(request)


TenantSession = Annotated[Connection, Depends(tenant_connection)]
"""The request's transaction, bound to the authenticated tenant."""


def require(permission: Permission) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the tenant principal, if its role grants `permission`."""

    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(tenant_principal)]
    ) -> Principal:
        if not principal.can(permission):
            raise Forbidden(f"Your role may not do this (needs `{permission}`).")
        assert principal.tenant_id is not None
        await idempotency.claim(request, connection_of(request), scope=principal.tenant_id)
        return principal

    return dependency


async def platform_principal(
    request: Request, principal: Annotated[Principal, Depends(authenticate)]
) -> Principal:
    """A platform operator (role `platform_admin`, no tenant). Raises Forbidden."""
    if not principal.can(Permission.PLATFORM) or principal.tenant_id is not None:
        raise Forbidden("Tenant lifecycle needs a platform_admin credential.")
    connection = connection_of(request)
    await bind_tenant(connection, PLATFORM_SCOPE)
    await idempotency.claim(request, connection, scope=PLATFORM_SCOPE)
    return principal


TENANT_SCOPED_PROBLEMS = problem_responses(
    Forbidden,
    TenantMismatch,
    tenant_service.TenantNotFound,
    tenant_service.TenantSuspended,
    ratelimit.RateLimited,
)
"""The problems any tenant-scoped endpoint may answer, for the routers' OpenAPI entries."""

Reader = Annotated[Principal, Depends(require(Permission.READ))]
Operator = Annotated[Principal, Depends(require(Permission.OPERATE))]
Deleter = Annotated[Principal, Depends(require(Permission.DELETE))]
Administrator = Annotated[Principal, Depends(require(Permission.ADMINISTER))]
PlatformAdministrator = Annotated[Principal, Depends(platform_principal)]
PlatformSession = Annotated[Connection, Depends(connection_of)]


async def authorize_briefly(request: Request, tenant_id: str, permission: Permission) -> Principal:
    """Authenticate and authorize a tenant-scoped request in a short transaction of its own,
    for a route that must not hold a pooled connection while it runs (a long-lived stream):
    the same checks, in the same order, as `require(permission)` under `TransactionalRoute`.

    Raises Unauthorized, TenantMismatch, TenantNotFound, TenantSuspended, RateLimited or
    Forbidden, as those do. The transaction has ended when this returns.
    """
    database: Database = request.app.state.database
    async with database.transaction(readonly=True) as connection:
        request.state.connection = connection
        try:
            principal = await authenticate(request, await bearer(request))
            principal = await enter_tenant(request, tenant_id, principal)
        finally:
            del request.state.connection
    if not principal.can(permission):
        raise Forbidden(f"Your role may not do this (needs `{permission}`).")
    return principal
