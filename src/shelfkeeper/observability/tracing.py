"""Optional OpenTelemetry traces, exported over OTLP/HTTP when an endpoint is configured.

With `SHELFKEEPER_OTLP_ENDPOINT` (or the standard `OTEL_EXPORTER_OTLP_ENDPOINT`) set, every
request becomes a server span named after its route template, and every asyncpg query a
child span carrying the SQL text (never its parameters, which may hold personal data).
Spans go to `<endpoint>/v1/traces` through a batching processor, so exporting never sits
on a request's path. Nothing is imported or patched when no endpoint is set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider

UNTRACED_URLS = "healthz,readyz,metrics"
"""Probes and scrapes: frequent, and of no interest in a trace."""


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of a collector's base `endpoint` (as the OTel spec builds it)."""
    return endpoint.rstrip("/") + "/v1/traces"


def configure_tracing(app: FastAPI, *, endpoint: str, service_name: str) -> TracerProvider:
    """Trace `app`'s requests and this process's asyncpg queries to `endpoint`.

    Returns the provider; `shutdown_tracing` flushes it and removes the asyncpg patch.
    """
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],
    )
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    return provider


def shutdown_tracing(provider: TracerProvider) -> None:
    """Export what is buffered, then stop tracing asyncpg queries."""
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    provider.shutdown()
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
