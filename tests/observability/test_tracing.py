"""OpenTelemetry traces reach an OTLP/HTTP collector when one is configured, and only then."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from shelfkeeper.app import create_app
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database
from shelfkeeper.observability import tracing
from tests.conftest import TenantWorld
from tests.observability.conftest import client_of, settings_like


class Collector(ThreadingHTTPServer):
    """A local OTLP/HTTP collector: keeps every exported span, with its request path."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CollectorHandler)
        self.paths: list[str] = []
        self.spans: list[Any] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.paths.append(self.path)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.server.spans.extend(scope_spans.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def attributes(span: Any) -> dict[str, Any]:
    return {item.key: item.value.string_value or item.value.int_value for item in span.attributes}


async def test_requests_and_their_queries_are_traced_without_parameters(
    settings: Settings, database: Database, world: TenantWorld, collector: Collector
) -> None:
    app = create_app(settings_like(settings, otlp_endpoint=collector.endpoint), database)
    provider = app.state.tracer_provider
    assert provider is not None
    try:
        async with client_of(app) as client:
            created = await client.post(
                f"/api/v1/{world.a}/locations",
                json={"code": "TRACE-1", "name": "Traced", "kind": "store"},
                headers=world.headers(world.a),
            )
            assert created.status_code == 201, created.text
            probe = await client.get("/healthz")
            assert probe.status_code == 200
        provider.force_flush()
    finally:
        tracing.shutdown_tracing(provider)

    assert set(collector.paths) == {"/v1/traces"}
    names = [span.name for span in collector.spans]
    server = [span for span in collector.spans if span.name == "POST /api/v1/{tenant_id}/locations"]
    assert len(server) == 1, names
    queries = [
        span
        for span in collector.spans
        if span.trace_id == server[0].trace_id and span.span_id != server[0].span_id
    ]
    statements = [attributes(span).get("db.statement", "") for span in queries]
    assert any("INSERT INTO location" in statement for statement in statements), statements
    assert not any("healthz" in name for name in names)
    everything = " ".join(str(attributes(span)) for span in collector.spans)
    assert "TRACE-1" not in everything  # query parameters are not captured
    assert "Bearer" not in everything


async def test_nothing_is_traced_without_an_endpoint(
    settings: Settings, database: Database
) -> None:
    app = create_app(settings_like(settings, otlp_endpoint=None), database)

    assert app.state.tracer_provider is None
    assert not any("OpenTelemetry" in type(layer.cls).__name__ for layer in app.user_middleware)


def test_the_traces_url_follows_the_otlp_convention() -> None:
    assert tracing.traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
