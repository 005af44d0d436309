"""Per-tenant rate limits: the moving window, its headers, the 429, tenants kept apart, the
service default, Redis shared between app instances, and failing open without Redis."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import httpx
import pytest
from fastapi import FastAPI

from shelfkeeper.config import Settings
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Database
from shelfkeeper.kit.ratelimit import Decision, Quota, RateLimiter, storage_for
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import RateLimit, TenantCreate, TenantSettings
from tests.conftest import TenantWorld, bearer, create_tenant, new_tenant_id
from tests.kit.assertions import assert_problem
from tests.location.factories import location_body, location_count, location_url, locations_url
from tests.observability.conftest import app_with, client_of

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


requires_redis = pytest.mark.skipif(
    os.environ.get("CI") != "true" and not redis_answers(),
    reason="no Redis at 127.0.0.1:6379 (under CI=true these tests run, and fail without it)",
)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def limited_tenant(database: Database, *, requests_per_second: int, burst: int) -> str:
    """A tenant whose own settings set its rate limit."""
    tenant_id = new_tenant_id()
    rate_limit = RateLimit(requests_per_second=requests_per_second, burst=burst)
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        await tenant_service.create(
            db,
            body=TenantCreate(
                id=tenant_id, name="Noisy", settings=TenantSettings(rate_limit=rate_limit)
            ),
        )
    return tenant_id


def rate_limit_headers(response: httpx.Response) -> dict[str, str]:
    return {
        name: response.headers[name]
        for name in ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Policy")
        if name in response.headers
    }


# --- the quota, the window and the headers ----------------------------------------------


@pytest.mark.parametrize(
    ("requests_per_second", "burst", "amount", "seconds"),
    [
        (1000, 2000, 2000, 2),  # the default: 2000 in any 2 s
        (2, 3, 3, 2),  # not a multiple: the window rounds up, the burst stays exact
        (5, 5, 5, 1),
        (10, 1, 10, 1),  # a burst below the rate is raised to it
        (1, 60, 60, 60),
    ],
)
def test_a_quota_is_a_moving_window_of_its_burst(
    requests_per_second: int, burst: int, amount: int, seconds: int
) -> None:
    window = Quota(requests_per_second, burst).window()

    assert (window.amount, window.get_expiry()) == (amount, seconds)


@pytest.mark.parametrize(("requests_per_second", "burst"), [(0, 10), (10, 0), (0, 0)])
def test_a_zero_turns_the_quota_off(requests_per_second: int, burst: int) -> None:
    assert not Quota(requests_per_second, burst).enabled


def test_headers_of_a_decision() -> None:
    allowed = Decision(allowed=True, limit=3, remaining=2, reset_seconds=2, window_seconds=2)
    refused = Decision(allowed=False, limit=3, remaining=0, reset_seconds=0, window_seconds=2)

    assert allowed.headers() == {
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "2",
        "RateLimit-Reset": "2",
        "RateLimit-Policy": "3;w=2",
    }
    assert refused.headers()["Retry-After"] == "1"  # never 0: retrying at once is pointless


def test_only_redis_urls_are_accepted() -> None:
    with pytest.raises(ValueError, match="redis://"):
        storage_for("memcached://127.0.0.1:11211")


async def test_the_limiter_counts_per_key() -> None:
    limiter = RateLimiter(default=Quota(1, 2))

    first = [await limiter.hit("one") for _ in range(3)]
    other = await limiter.hit("two")

    assert [decision.allowed if decision else None for decision in first] == [True, True, False]
    assert other is not None
    assert (other.allowed, other.remaining) == (True, 1)


# --- through the API ----------------------------------------------------------------------


@pytest.fixture
def fresh_app(settings: Settings, database: Database) -> FastAPI:
    """An app with a limiter of its own (in memory) and the default quota."""
    return app_with(settings, database)


async def test_a_tenant_over_its_limit_gets_429_and_others_are_unaffected(
    fresh_app: FastAPI, database: Database, world: TenantWorld, owner_connection: Connection
) -> None:
    # given: a tenant allowed 2/s with a burst of 3, and a tenant with the default
    noisy = await limited_tenant(database, requests_per_second=2, burst=3)
    noisy_admin = bearer(world.token(noisy, "admin"))

    async with client_of(fresh_app) as client:
        # when: the noisy tenant spends its burst, and goes on
        burst = [await client.get(locations_url(noisy), headers=noisy_admin) for _ in range(3)]
        refused = await client.get(locations_url(noisy), headers=noisy_admin)
        refused_write = await client.post(
            locations_url(noisy), json=location_body(code="RL-1"), headers=noisy_admin
        )
        # and the quiet tenant calls meanwhile
        quiet = await client.get(locations_url(world.a), headers=world.headers(world.a))

    # then: the burst passed, counting down
    assert [response.status_code for response in burst] == [200, 200, 200]
    assert [rate_limit_headers(response) for response in burst] == [
        {"RateLimit-Limit": "3", "RateLimit-Remaining": str(left), "RateLimit-Policy": "3;w=2"}
        for left in (2, 1, 0)
    ]
    for response in burst:
        assert 0 <= int(response.headers["RateLimit-Reset"]) <= 2
        assert "Retry-After" not in response.headers
    # the next ones are refused, saying when to come back
    for response in (refused, refused_write):
        body = assert_problem(response, status=429, slug="rate-limited")
        assert body["title"] == "Too many requests"
        assert rate_limit_headers(response) == {
            "RateLimit-Limit": "3",
            "RateLimit-Remaining": "0",
            "RateLimit-Policy": "3;w=2",
        }
        retry_after = int(response.headers["Retry-After"])
        assert 1 <= retry_after <= 2
        assert 1 <= int(response.headers["RateLimit-Reset"]) <= 2
    # a refused write wrote nothing
    assert await location_count(owner_connection, tenant=noisy) == 0
    # the other tenant counts on its own budget (the default: 2000 in any 2 s)
    assert quiet.status_code == 200
    assert rate_limit_headers(quiet) == {
        "RateLimit-Limit": "2000",
        "RateLimit-Remaining": "1999",
        "RateLimit-Policy": "2000;w=2",
    }


async def test_tenants_without_a_limit_of_their_own_get_the_service_default(
    settings: Settings, database: Database, world: TenantWorld
) -> None:
    app = app_with(settings, database, rate_limit_per_second=1, rate_limit_burst=2)
    generous = await limited_tenant(database, requests_per_second=100, burst=100)

    async with client_of(app) as client:
        defaulted = [
            await client.get(locations_url(world.a), headers=world.headers(world.a))
            for _ in range(3)
        ]
        own = [
            await client.get(
                locations_url(generous), headers=bearer(world.token(generous, "admin"))
            )
            for _ in range(3)
        ]

    assert [response.status_code for response in defaulted] == [200, 200, 429]
    assert defaulted[0].headers["RateLimit-Policy"] == "2;w=2"
    assert [response.status_code for response in own] == [200, 200, 200]
    assert own[-1].headers["RateLimit-Remaining"] == "97"


async def test_zero_turns_rate_limiting_off(
    settings: Settings, database: Database, world: TenantWorld
) -> None:
    off = app_with(settings, database, rate_limit_per_second=0)
    strict = app_with(settings, database, rate_limit_per_second=1, rate_limit_burst=1)
    unlimited = await limited_tenant(database, requests_per_second=0, burst=0)

    async with client_of(off) as client:
        by_default = [
            await client.get(locations_url(world.a), headers=world.headers(world.a))
            for _ in range(5)
        ]
    async with client_of(strict) as client:
        by_tenant = [
            await client.get(
                locations_url(unlimited), headers=bearer(world.token(unlimited, "admin"))
            )
            for _ in range(5)
        ]

    for response in [*by_default, *by_tenant]:
        assert response.status_code == 200
        assert rate_limit_headers(response) == {}


async def test_only_tenant_scoped_requests_are_limited(
    settings: Settings, database: Database, world: TenantWorld
) -> None:
    app = app_with(settings, database, rate_limit_per_second=1, rate_limit_burst=1)

    async with client_of(app) as client:
        platform = [await client.get("/api/v1/tenants", headers=world.platform) for _ in range(3)]
        health = [await client.get("/healthz") for _ in range(3)]
        tenant = [
            await client.get(
                location_url(world.a, str(uuid.uuid4())), headers=world.headers(world.a)
            )
            for _ in range(2)
        ]

    for response in [*platform, *health]:
        assert response.status_code == 200
        assert rate_limit_headers(response) == {}
    # tenant-scoped answers carry the headers whatever their status
    assert [response.status_code for response in tenant] == [404, 429]
    assert rate_limit_headers(tenant[0])["RateLimit-Remaining"] == "0"


async def test_the_openapi_document_declares_429_on_tenant_scoped_operations(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()

    operation = document["paths"]["/api/v1/{tenant_id}/locations"]["get"]
    assert "`rate-limited`" in operation["responses"]["429"]["description"]
    assert "429" not in document["paths"]["/api/v1/tenants"]["get"]["responses"]


# --- Redis ----------------------------------------------------------------------------------


@requires_redis
async def test_two_app_instances_share_one_budget_through_redis(
    settings: Settings, database: Database, world: TenantWorld
) -> None:
    # given: two apps, each with its own process state, both on the same Redis
    first = app_with(settings, database, redis_url=REDIS_URL)
    second = app_with(settings, database, redis_url=REDIS_URL)
    noisy = await limited_tenant(database, requests_per_second=2, burst=3)
    headers = bearer(world.token(noisy, "viewer"))

    try:
        async with client_of(first) as one, client_of(second) as other:
            # when: the tenant's requests alternate between the instances
            responses = [
                await one.get(locations_url(noisy), headers=headers),
                await other.get(locations_url(noisy), headers=headers),
                await one.get(locations_url(noisy), headers=headers),
                await other.get(locations_url(noisy), headers=headers),
                await one.get(locations_url(noisy), headers=headers),
            ]
            quiet = await other.get(locations_url(world.b), headers=world.headers(world.b))
    finally:
        await first.state.rate_limiter.close()
        await second.state.rate_limiter.close()

    # then: one budget of 3 for both
    assert [response.status_code for response in responses] == [200, 200, 200, 429, 429]
    assert [response.headers["RateLimit-Remaining"] for response in responses] == [
        "2",
        "1",
        "0",
        "0",
        "0",
    ]
    assert 1 <= int(responses[3].headers["Retry-After"]) <= 2
    assert quiet.status_code == 200
    assert quiet.headers["RateLimit-Remaining"] == "1999"


async def test_without_redis_requests_are_served_unlimited_and_a_warning_is_logged(
    settings: Settings,
    database: Database,
    world: TenantWorld,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = app_with(
        settings,
        database,
        redis_url=f"redis://127.0.0.1:{closed_port()}/0",
        rate_limit_per_second=1,
        rate_limit_burst=1,
    )

    with caplog.at_level(logging.WARNING, logger="shelfkeeper.ratelimit"):
        async with client_of(app) as client:
            responses = [
                await client.get(locations_url(world.a), headers=world.headers(world.a))
                for _ in range(3)
            ]

    assert [response.status_code for response in responses] == [200, 200, 200]
    for response in responses:
        assert rate_limit_headers(response) == {}
    warnings = [record for record in caplog.records if record.name == "shelfkeeper.ratelimit"]
    assert warnings
    assert all(record.levelno == logging.WARNING for record in warnings)
    assert "rate limiting off" in warnings[0].getMessage()


async def test_a_limit_set_through_the_tenant_api_applies_at_once(
    fresh_app: FastAPI, world: TenantWorld
) -> None:
    async with client_of(fresh_app) as client:
        before = await client.get(locations_url(world.a), headers=world.headers(world.a))
        patched = await client.patch(
            f"/api/v1/tenants/{world.a}",
            json={"settings": {"rate_limit": {"requests_per_second": 1, "burst": 1}}},
            headers=world.platform,
        )
        after = [
            await client.get(locations_url(world.a), headers=world.headers(world.a))
            for _ in range(2)
        ]

    assert before.headers["RateLimit-Limit"] == "2000"
    assert patched.status_code == 200, patched.text
    assert [response.status_code for response in after] == [200, 429]
    assert after[0].headers["RateLimit-Policy"] == "1;w=1"


async def test_an_unreadable_stored_limit_falls_back_to_the_default(
    fresh_app: FastAPI, database: Database, world: TenantWorld, owner_connection: Connection
) -> None:
    # given: a tenant of its own (other tests list every tenant), its setting made unreadable
    tenant_id = await create_tenant(database)
    await owner_connection.execute(
        """UPDATE tenant SET settings = '{"rate_limit": {"requests_per_second": "many"}}'
        WHERE id = $1""",
        tenant_id,
    )

    try:
        async with client_of(fresh_app) as client:
            response = await client.get(
                locations_url(tenant_id), headers=bearer(world.token(tenant_id, "admin"))
            )
    finally:
        await owner_connection.execute("DELETE FROM tenant WHERE id = $1", tenant_id)

    assert response.status_code == 200
    assert response.headers["RateLimit-Limit"] == "2000"
