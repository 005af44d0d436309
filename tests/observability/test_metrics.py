"""`/metrics`: request counts and latency per route template, 5xx errors, the pool's usage,
the domain counters, and who may read it."""

from __future__ import annotations

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client.parser import text_string_to_metric_families

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database
from shelfkeeper.kit.routing import TransactionalRoute
from shelfkeeper.observability import metrics
from tests.conftest import TenantWorld
from tests.location.factories import create_location, location_url, locations_url
from tests.observability.conftest import app_with, client_of

LOCATION_ROUTE = "/api/v1/{tenant_id}/locations/{location_id}"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def fresh_app(settings: Settings, database: Database) -> FastAPI:
    """An app whose registry has counted nothing yet."""
    return app_with(settings, database)


async def test_requests_are_counted_and_timed_per_route_template(
    fresh_app: FastAPI, world: TenantWorld
) -> None:
    async with client_of(fresh_app) as client:
        location = await create_location(client, world, tenant=world.a, code="MET-1")
        for _ in range(3):
            found = await client.get(
                location_url(world.a, location["id"]), headers=world.headers(world.a)
            )
            assert found.status_code == 200
        missing = await client.get(
            location_url(world.a, "00000000-0000-0000-0000-000000000000"),
            headers=world.headers(world.a),
        )
        assert missing.status_code == 404
        text = (await client.get("/metrics")).text
        samples = await scrape(client)

    ok = {"route": LOCATION_ROUTE, "method": "GET", "status": "200"}
    assert value(samples, "http_requests_total", **ok) == 3
    assert value(samples, "http_request_duration_seconds_count", **ok) == 3
    assert value(samples, "http_request_duration_seconds_sum", **ok) > 0
    assert value(samples, "http_request_duration_seconds_bucket", **ok, le="+Inf") == 3
    assert value(samples, "http_requests_total", **(ok | {"status": "404"})) == 1
    created = {"route": "/api/v1/{tenant_id}/locations", "method": "POST", "status": "201"}
    assert value(samples, "http_requests_total", **created) == 1
    assert value(samples, "http_server_errors_total", **ok) == 0
    # the template, never a path with ids, and no tenant label unless asked for
    assert location["id"] not in text
    assert world.a not in text
    assert 'tenant="' not in text


async def test_unmatched_paths_share_one_label(fresh_app: FastAPI) -> None:
    async with client_of(fresh_app) as client:
        for path in ("/nope", "/api/v1/acme/nothing/here", "/customer/jane@example.com"):
            assert (await client.get(path)).status_code == 404
        text = (await client.get("/metrics")).text
        samples = await scrape(client)

    unmatched = {"route": "unmatched", "method": "GET", "status": "404"}
    assert value(samples, "http_requests_total", **unmatched) == 3
    assert "jane" not in text
    assert "nothing" not in text


async def test_server_errors_are_counted(settings: Settings, database: Database) -> None:
    app = app_with(settings, database)
    router = APIRouter(prefix="/test-only", route_class=TransactionalRoute)

    @router.get("/crash/{thing}")
    async def crash(thing: str) -> None:
        raise RuntimeError("boom")

    app.include_router(router)
    app.state.authenticator = None  # the crash is the point, not authentication

    async with client_of(app) as client:
        responses = [await client.get(f"/test-only/crash/{n}") for n in range(2)]
        samples = await scrape(client)

    assert [response.status_code for response in responses] == [500, 500]
    crashed = {"route": "/test-only/crash/{thing}", "method": "GET", "status": "500"}
    assert value(samples, "http_server_errors_total", **crashed) == 2
    assert value(samples, "http_requests_total", **crashed) == 2


async def test_tenant_label_is_opt_in(
    settings: Settings, database: Database, world: TenantWorld
) -> None:
    app = app_with(settings, database, metrics_tenant_labels=True)

    async with client_of(app) as client:
        assert (
            await client.get(locations_url(world.a), headers=world.headers(world.a))
        ).status_code == 200
        assert (
            await client.get(locations_url(world.b), headers=world.headers(world.b))
        ).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
        samples = await scrape(client)

    listed = {"route": "/api/v1/{tenant_id}/locations", "method": "GET", "status": "200"}
    assert value(samples, "http_requests_total", **listed, tenant=world.a) == 1
    assert value(samples, "http_requests_total", **listed, tenant=world.b) == 1
    health = {"route": "/healthz", "method": "GET", "status": "200", "tenant": ""}
    assert value(samples, "http_requests_total", **health) == 1


async def test_pool_usage_is_read_when_scraped(fresh_app: FastAPI, database: Database) -> None:
    async with client_of(fresh_app) as client:
        before = await scrape(client)
        async with database.pool.acquire():
            during = await scrape(client)

    for samples in (before, during):
        size = value(samples, "db_pool_size")
        assert size >= 1
        assert value(samples, "db_pool_idle") + value(samples, "db_pool_in_use") == size
        assert value(samples, "db_pool_max_size") == database.pool.get_max_size()
    assert value(during, "db_pool_in_use") == value(before, "db_pool_in_use") + 1


async def test_domain_counters_are_exposed_by_every_app(
    settings: Settings, database: Database
) -> None:
    first, second = app_with(settings, database), app_with(settings, database)
    async with client_of(first) as one, client_of(second) as other:
        before = await scrape(one)

        metrics.count_stock_movement("reserve")
        metrics.count_stock_movement("reserve")
        metrics.count_order_transition("pending", "processed")

        after_one, after_other = await scrape(one), await scrape(other)
        text = (await one.get("/metrics")).text

    assert "# TYPE stock_movements_total counter" in text
    assert "# TYPE order_transitions_total counter" in text
    for after in (after_one, after_other):
        reserved = value(after, "stock_movements_total", operation="reserve")
        assert reserved == value(before, "stock_movements_total", operation="reserve") + 2
        moved = {"from": "pending", "to": "processed"}
        assert value(after, "order_transitions_total", **moved) == (
            value(before, "order_transitions_total", **moved) + 1
        )


async def test_metrics_need_no_credential_by_default_and_are_no_tenant_route(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    public = await client.get("/metrics")
    under_tenant = await client.get(f"/api/v1/{world.a}/metrics", headers=world.headers(world.a))

    assert public.status_code == 200
    assert "http_requests_total" in public.text
    assert under_tenant.status_code == 404


async def test_a_metrics_token_guards_the_metrics(settings: Settings, database: Database) -> None:
    app = app_with(settings, database, metrics_token="scrape-me-0123456789")

    async with client_of(app) as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer scrape-me-no"})
        right = await client.get(
            "/metrics", headers={"Authorization": "Bearer scrape-me-0123456789"}
        )

    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert anonymous.headers["content-type"] == "application/problem+json"
    assert right.status_code == 200
    assert "http_requests_total" in right.text
