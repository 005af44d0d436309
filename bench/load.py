"""The load generator, run as its own process: `python -m bench.load < spec.json`.

It reads one scenario spec (JSON) on stdin, drives it, and writes one JSON summary on stdout.
Two modes drive the same scenario:

- `raw` (the default) and `http`: `concurrency` tasks send the scenario's request to the
  service over loopback, one keep-alive connection each, through a minimal HTTP/1.1 client
  (`raw`) or one `httpx.AsyncClient` (`http`, a realistic but CPU-hungry client);
- `sql`: the ceiling. The same tasks issue the statements the service issues for that
  request, straight through an asyncpg pool as the service role (`SET ROLE`), one
  transaction per operation, no HTTP. The statements are the service's own: this module
  calls the repository functions the service calls, so the SQL cannot drift.

Both stop at `duration` seconds or after `max_requests` operations, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

Operation = Callable[[int], Awaitable[str]]
"""One operation by task `index`; returns its outcome (an HTTP status, `ok`, `refused`)."""


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (0.0 when empty)."""
    if not ordered:
        return 0.0
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def drive(
    operation: Operation, *, concurrency: int, duration: float, max_requests: int
) -> dict[str, Any]:
    """Run `operation` from `concurrency` tasks until the time or the count is spent."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    issued = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    deadline = started + duration

    async def worker(index: int) -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            issued += 1
            before = time.perf_counter()
            try:
                outcome = await operation(index)
            except Exception as error:  # counted, never fatal: the run must finish
                outcome = f"error:{type(error).__name__}"
            latencies.append(time.perf_counter() - before)
            outcomes[outcome] += 1

    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "operations": len(latencies),
        "elapsed_seconds": round(elapsed, 3),
        "ops_per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {
            name: round(percentile(latencies, fraction) * 1000, 2)
            for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
        },
        "outcomes": dict(sorted(outcomes.items())),
        # The load generator's own CPU: near `elapsed_seconds` means it, not the system
        # under test, may be what limits the rate.
        "client_cpu_seconds": round(time.process_time() - cpu_started, 2),
    }


# --- the service, over HTTP -------------------------------------------------------------


def _http_request(spec: dict[str, Any], index: int) -> tuple[str, str, dict[str, Any] | None]:
    """Method, path and JSON body of task `index`'s request."""
    tenant = spec["tenant_id"]
    items = spec["item_ids"]
    item_id = items[index % len(items)]
    if spec["scenario"] == "read":
        return "GET", f"/api/v1/{tenant}/inventory/{item_id}", None
    body = {
        "operation": "reserve" if spec["scenario"] == "hot-sku" else "add",
        "quantity": 1,
        "location_id": spec["location_id"],
        "reason": "sale" if spec["scenario"] == "hot-sku" else "received",
    }
    return "PATCH", f"/api/v1/{tenant}/inventory/{item_id}/stock", body


async def run_http(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    concurrency = spec["concurrency"]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {spec['token']}"}
    requests = [_http_request(spec, index) for index in range(concurrency)]
    async with httpx.AsyncClient(
        base_url=spec["base_url"], headers=headers, limits=limits, timeout=30.0
    ) as client:

        async def operation(index: int) -> str:
            method, path, body = requests[index]
            response = await client.request(method, path, json=body)
            return str(response.status_code)

        return await drive(
            operation,
            concurrency=concurrency,
            duration=spec["duration"],
            max_requests=spec["max_requests"],
        )


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client for one connection: a fixed request, sent again
    and again, and a response read by its Content-Length.

    It costs a fraction of httpx's CPU per request, which matters when the load generator
    shares a 2-core machine with the service and PostgreSQL.
    """

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self) -> str:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(self.request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12].decode()
            length = 0
            close = False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
                elif name == b"transfer-encoding":
                    raise RuntimeError("chunked responses are not supported")
            await reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.streams is not None:
            writer = self.streams[1]
            self.streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def run_raw(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["base_url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    connections = []
    for index in range(spec["concurrency"]):
        method, path, body = _http_request(spec, index)
        payload = json.dumps(body).encode() if body is not None else b""
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {spec['token']}\r\nAccept: application/json\r\n"
        )
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        connections.append(RawConnection(host, port, (head + "\r\n").encode() + payload))

    async def operation(index: int) -> str:
        return await connections[index].send()

    try:
        return await drive(
            operation,
            concurrency=spec["concurrency"],
            duration=spec["duration"],
            max_requests=spec["max_requests"],
        )
    finally:
        for connection in connections:
            await connection.close()


# --- the ceiling: the same statements through asyncpg ----------------------------------


async def run_sql(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncpg

    from shelfkeeper.db.database import init_connection
    from shelfkeeper.db.migrate import SERVICE_ROLE
    from shelfkeeper.inventory import repository as inventory
    from shelfkeeper.tenant import repository as tenant

    async def init(connection: Any) -> None:
        await init_connection(connection, role=SERVICE_ROLE)

    tenant_id: str = spec["tenant_id"]
    item_ids = [UUID(each) for each in spec["item_ids"]]
    location_id = UUID(spec["location_id"])
    scenario = spec["scenario"]
    operation_name = "reserve" if scenario == "hot-sku" else "add"
    reason = "sale" if scenario == "hot-sku" else "received"
    pool = await asyncpg.create_pool(
        spec["dsn"], min_size=spec["pool_size"], max_size=spec["pool_size"], init=init
    )
    try:

        async def read(index: int) -> str:
            item_id = item_ids[index % len(item_ids)]
            async with pool.acquire() as connection, connection.transaction(readonly=True):
                await tenant.enter(connection, tenant_id)
                row = await inventory.get_item(connection, tenant_id=tenant_id, item_id=item_id)
            return "ok" if row is not None else "missing"

        async def adjust(index: int) -> str:
            item_id = item_ids[index % len(item_ids)]
            async with pool.acquire() as connection, connection.transaction():
                # What `inventory.service.adjust` issues: the tenant binding (one statement
                # with the tenant lookup), the variant resolution, the conditional statement,
                # and on a refusal the read that explains it.
                await tenant.enter(connection, tenant_id)
                variants = await inventory.variants_of(
                    connection, tenant_id=tenant_id, item_id=item_id
                )
                change = inventory.Change(
                    variant_id=variants[0]["id"],
                    location_id=location_id,
                    operation=operation_name,
                    quantity=1,
                    reason=reason,
                    note=None,
                    reference=None,
                    expected_version=None,
                    allow_backorder=variants[0]["allow_backorder"],
                )
                row = await inventory.apply(
                    connection, tenant_id=tenant_id, change=change, actor="user:bench"
                )
                if row is None:
                    await inventory.get_level(
                        connection,
                        tenant_id=tenant_id,
                        variant_id=change.variant_id,
                        location_id=location_id,
                    )
                    return "refused"
            return "ok"

        return await drive(
            read if scenario == "read" else adjust,
            concurrency=spec["concurrency"],
            duration=spec["duration"],
            max_requests=spec["max_requests"],
        )
    finally:
        await pool.close()


def main() -> None:
    import uvloop

    spec = json.load(sys.stdin)
    runners = {"http": run_http, "raw": run_raw, "sql": run_sql}
    runner = runners[spec["mode"]]
    result = uvloop.run(runner(spec))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
