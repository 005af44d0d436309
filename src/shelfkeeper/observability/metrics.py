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

Domain counters (shared by every app's registry), counted by the domain code once the
transaction that made the change has committed (`kit.recording.after_commit`), so a change
rolled back is never counted:
- `stock_movements_total{operation}`, `order_transitions_total{from,to}`.

Domain gauges, read from the database by a sampler (`Sampler`, given by the app) at most
every `SAMPLE_INTERVAL_SECONDS`, when a scrape asks (`Metrics.refresh`), never per request;
`tenant` label only with `SHELFKEEPER_METRICS_TENANT_LABELS=true`:
- `outbox_unsequenced_events`, `outbox_oldest_unsequenced_age_seconds`,
  `stock_levels_low`, and `domain_sample_success` (0 while the sampler fails).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

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

logger = logging.getLogger("shelfkeeper.metrics")

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


WEBHOOK_DELIVERIES = Counter(
    "webhook_deliveries",
    "Webhook delivery attempts, by outcome: delivered (2xx), http_error (any other status, "
    "3xx included), network_error (no answer: connection, timeout, name resolution), "
    "refused (the target's address is not allowed).",
    ["outcome"],
    registry=None,
)
WEBHOOK_LATENCY = Histogram(
    "webhook_delivery_duration_seconds",
    "Time one webhook delivery attempt took, name resolution to answer.",
    buckets=LATENCY_BUCKETS,
    registry=None,
)
DOMAIN_METRICS += (WEBHOOK_DELIVERIES, WEBHOOK_LATENCY)


def count_webhook_delivery(outcome: str, duration_seconds: float) -> None:
    """Count one webhook delivery attempt and its duration."""
    WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
    WEBHOOK_LATENCY.observe(duration_seconds)


def count_stock_movement(operation: str) -> None:
    """Count one stock movement: call once the change has committed
    (`kit.recording.after_commit`)."""
    STOCK_MOVEMENTS.labels(operation=operation).inc()


def count_order_transition(from_status: str, to_status: str) -> None:
    """Count one order status change: call once it has committed."""
    ORDER_TRANSITIONS.labels(from_status, to_status).inc()


PoolSource = Callable[[], "asyncpg.Pool[asyncpg.Record] | None"]

SAMPLE_INTERVAL_SECONDS = 10.0
"""Scrapes within this long of the last sample reuse it: the database is asked at most this
often, however many scrapers (or workers' scrapes) there are."""
SAMPLE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class TenantSample:
    """One tenant's domain gauges, as read from the database."""

    tenant_id: str
    unsequenced_events: int
    oldest_unsequenced_age_seconds: float | None
    low_stock_levels: int


Sampler = Callable[[], Awaitable[Sequence[TenantSample]]]
"""Reads every tenant's `TenantSample` (cross-tenant: given by the app, which may reach the
domains; this package may not)."""


class DomainGauges(Collector):
    """The outbox backlog and low stock, from the last sample (refreshed by `refresh`)."""

    def __init__(self, sampler: Sampler | None, *, tenant_labels: bool) -> None:
        self.sampler = sampler
        self.tenant_labels = tenant_labels
        self.samples: Sequence[TenantSample] | None = None
        self.sampled_at: float | None = None  # time.monotonic() of the last attempt
        self._lock = asyncio.Lock()

    async def refresh(self, *, now: float | None = None) -> None:
        """Sample again if the last attempt is older than `SAMPLE_INTERVAL_SECONDS`.

        A failing or slow sampler is logged and leaves the gauges without samples (with
        `domain_sample_success` 0), never an error for the scrape.
        """
        if self.sampler is None:
            return
        async with self._lock:
            moment = time.monotonic() if now is None else now
            if self.sampled_at is not None and moment - self.sampled_at < SAMPLE_INTERVAL_SECONDS:
                return
            self.sampled_at = moment
            try:
                async with asyncio.timeout(SAMPLE_TIMEOUT_SECONDS):
                    self.samples = list(await self.sampler())
            except Exception:
                logger.warning("sampling the domain gauges failed", exc_info=True)
                self.samples = None

    def collect(self) -> Iterable[Metric]:
        if self.sampler is None:
            return
        yield GaugeMetricFamily(
            "domain_sample_success",
            "1 if the last sample of the domain gauges succeeded, else 0.",
            value=1 if self.samples is not None else 0,
        )
        if self.samples is None:
            return
        elapsed = time.monotonic() - (self.sampled_at or time.monotonic())
        labels = ["tenant"] if self.tenant_labels else []
        backlog = GaugeMetricFamily(
            "outbox_unsequenced_events",
            "Events in the outbox the relay has not numbered yet.",
            labels=labels,
        )
        age = GaugeMetricFamily(
            "outbox_oldest_unsequenced_age_seconds",
            "How long the oldest event not yet numbered by the relay has waited (0: none).",
            labels=labels,
        )
        low = GaugeMetricFamily(
            "stock_levels_low",
            "Stock levels whose available stock is at or below their low-stock threshold.",
            labels=labels,
        )
        ages = [
            0.0
            if sample.oldest_unsequenced_age_seconds is None
            else sample.oldest_unsequenced_age_seconds + elapsed
            for sample in self.samples
        ]
        if self.tenant_labels:
            for sample, waited in zip(self.samples, ages, strict=True):
                backlog.add_metric([sample.tenant_id], sample.unsequenced_events)
                age.add_metric([sample.tenant_id], waited)
                low.add_metric([sample.tenant_id], sample.low_stock_levels)
        else:
            backlog.add_metric([], sum(sample.unsequenced_events for sample in self.samples))
            age.add_metric([], max(ages, default=0.0))
            low.add_metric([], sum(sample.low_stock_levels for sample in self.samples))
        yield from (backlog, age, low)


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

    def __init__(
        self, *, tenant_labels: bool, pool: PoolSource, sampler: Sampler | None = None
    ) -> None:
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
        self.domain = DomainGauges(sampler, tenant_labels=tenant_labels)
        self.registry.register(self.domain)
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

    async def refresh(self) -> None:
        """Bring the sampled gauges up to date, if due (before `render`, at scrape time)."""
        await self.domain.refresh()

    def render(self) -> bytes:
        """The registry in the Prometheus text format (`CONTENT_TYPE`)."""
        return generate_latest(self.registry)
