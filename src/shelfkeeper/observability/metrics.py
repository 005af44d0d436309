"""Prometheus metrics, served at `/metrics` in the text format.

Every app has a registry of its own (`Metrics`), so two apps in one process (tests) never
mix their counts; with several uvicorn workers each worker process has its own too, and a
scrape sees the worker that answered it (`docs/observability.md`).

HTTP (labels `route`, the route template, never the raw path; `method`; `status`; and
`tenant` when `SHELFKEEPER_METRICS_TENANT_LABELS=true`):
- `http_requests_total`, `http_request_duration_seconds` (histogram),
  `http_server_errors_total` (5xx only).

Database pool, read from the asyncpg pool at scrape time:
- `db_pool_size`, `db_pool_idle`, `db_pool_in_use`, `db_pool_max_size`.

Domain counters, defined here for the domain code to count with (shared by every app's
registry; not wired yet):
- `stock_movements_total{operation}`, `order_transitions_total{from,to}`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED_ROUTE = "unmatched"
"""The `route` of requests no route matched: their paths are unbounded and may hold anything."""
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

STOCK_MOVEMENTS = Counter(
    "stock_movements",
    "Stock movements written, by operation (add, subtract, reserve, release, set).",
    ["operation"],
    registry=None,
)
ORDER_TRANSITIONS = Counter(
    "order_transitions",
    "Order status changes, by the status left and the status entered.",
    ["from", "to"],
    registry=None,
)
DOMAIN_METRICS: tuple[Collector, ...] = (STOCK_MOVEMENTS, ORDER_TRANSITIONS)


# metrics: webhook


def count_stock_movement(operation: str) -> None:
    """Count one stock movement (call after the change committed, or accept retried counts)."""
    STOCK_MOVEMENTS.labels(operation=operation).inc()


def count_order_transition(from_status: str, to_status: str) -> None:
    ORDER_TRANSITIONS.labels(from_status, to_status).inc()


PoolSource = Callable[[], "asyncpg.Pool[asyncpg.Record] | None"]


class PoolCollector(Collector):
    """The connection pool's usage, read when scraped (nothing to update per request)."""

    def __init__(self, pool: PoolSource) -> None:
        self.pool = pool

    def collect(self) -> Iterable[Metric]:
        pool = self.pool()
        if pool is None:
            return
        size, idle = pool.get_size(), pool.get_idle_size()
        for name, documentation, value in (
            ("db_pool_size", "Connections the pool holds open.", size),
            ("db_pool_idle", "Open connections waiting for a request.", idle),
            ("db_pool_in_use", "Connections serving a request now.", size - idle),
            ("db_pool_max_size", "Most connections the pool may open.", pool.get_max_size()),
        ):
            yield GaugeMetricFamily(name, documentation, value=value)


class Metrics:
    """One app's registry: request metrics, the pool, process metrics, the domain counters."""

    def __init__(self, *, tenant_labels: bool, pool: PoolSource) -> None:
        self.tenant_labels = tenant_labels
        self.registry = CollectorRegistry()
        labels = ["route", "method", "status", *(["tenant"] if tenant_labels else [])]
        self.requests = Counter(
            "http_requests",
            "Requests answered, by route template, method and status.",
            labels,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from the request's arrival to the end of its response.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.server_errors = Counter(
            "http_server_errors",
            "Requests answered with a 5xx status.",
            labels,
            registry=self.registry,
        )
        self.registry.register(PoolCollector(pool))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        for collector in DOMAIN_METRICS:
            self.registry.register(collector)

    def observe_request(
        self,
        *,
        route: str | None,
        method: str,
        status: int,
        duration_seconds: float,
        tenant: str | None,
    ) -> None:
        values = [
            route or UNMATCHED_ROUTE,
            method if method in KNOWN_METHODS else "other",
            str(status),
        ]
        if self.tenant_labels:
            values.append(tenant or "")
        self.requests.labels(*values).inc()
        self.latency.labels(*values).observe(duration_seconds)
        if status >= 500:
            self.server_errors.labels(*values).inc()

    def render(self) -> bytes:
        """The registry in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
