"""The framework floor: the `read` and `adjust` statements (`bench.statements`) behind a bare
FastAPI app, served by uvicorn exactly as the service is (uvloop, httptools, one process per
worker) and driven by the same load client.

It has no authentication, tenancy checks, rate limiting, idempotency, audit rules, logging,
metrics or problem documents: only routing, path and body validation, the statements and a
JSON rendering of the row. So `floor / ceiling` is the most any FastAPI service issuing these
statements can reach on this machine, and `service / floor` what Shelfkeeper's own request
handling costs on top of that. Run: `DATABASE_URL=... uvicorn bench.floor:app`.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal
from uuid import UUID

import asyncpg
from fastapi import FastAPI, Response
from pydantic import BaseModel

from bench import statements
from shelfkeeper.db.database import init_connection, keep_session
from shelfkeeper.db.migrate import SERVICE_ROLE


class StockChange(BaseModel):
    operation: Literal["add", "remove", "reserve", "release", "set"]
    quantity: int
    location_id: UUID
    reason: str | None = None


pool: Any = None


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global pool

    async def init(connection: Any) -> None:
        await init_connection(connection, role=SERVICE_ROLE)

    size = int(os.environ.get("SHELFKEEPER_DATABASE_POOL_MAX_SIZE", "20"))
    pool = await asyncpg.create_pool(
        os.environ["DATABASE_URL"], min_size=1, max_size=size, init=init, reset=keep_session
    )
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


def rendered(row: Any, status: int = 200) -> Response:
    body = json.dumps(dict(row), default=str, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


@app.get("/api/v1/{tenant_id}/inventory/{item_id}")
async def read(tenant_id: str, item_id: UUID) -> Response:
    async with pool.acquire() as connection:
        row = await statements.read(connection, tenant_id=tenant_id, item_id=item_id)
    if row is None:
        return Response(status_code=404)
    return rendered(row)


@app.patch("/api/v1/{tenant_id}/inventory/{item_id}/stock")
async def adjust(tenant_id: str, item_id: UUID, body: StockChange) -> Response:
    async with pool.acquire() as connection:
        row = await statements.adjust(
            connection,
            tenant_id=tenant_id,
            item_id=item_id,
            location_id=body.location_id,
            operation=body.operation,
        )
    if row is None:
        return Response(status_code=409)
    return rendered(row)
