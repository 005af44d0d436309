"""Log capture and apps of their own for the observability tests."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shelfkeeper.app import create_app
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database
from shelfkeeper.observability.logging import LogFormat, configure_structlog, formatter


@dataclass
class CapturedLogs:
    """What the service's root handler would have written, as text and as JSON lines."""

    stream: io.StringIO

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines()]

    def access_lines(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["logger"] == "shelfkeeper.access"]


@contextmanager
def captured_logs(log_format: LogFormat = "json") -> Iterator[CapturedLogs]:
    """Render every log record at INFO and above as the service does, into a buffer."""
    configure_structlog()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(log_format))
    # The test's own HTTP client logs each request it sends, URL included; the service
    # sets `httpx` to WARNING (`logging_config`) so its own outgoing calls never do.
    handler.addFilter(lambda record: not record.name.startswith(("httpx", "httpcore")))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield CapturedLogs(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def logs() -> Iterator[CapturedLogs]:
    with captured_logs() as captured:
        yield captured


def settings_like(settings: Settings, **changes: Any) -> Settings:
    """The session's settings (database, JWT secret) with `changes` on top."""
    return Settings(
        database_url=settings.database_url,
        data_dir=settings.data_dir,
        jwt_secret=settings.jwt_secret,
        **changes,
    )


@asynccontextmanager
async def client_of(
    app: FastAPI, *, base_url: str = "http://shelfkeeper.test"
) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
        yield client


def app_with(settings: Settings, database: Database, **changes: Any) -> FastAPI:
    """A new app (its own metrics registry and rate limiter) on the session's pool."""
    return create_app(settings_like(settings, **changes), database=database)
