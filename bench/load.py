"""The load generator, run as its own process: `python -m bench.load < spec.json`.

It reads one scenario spec (JSON) on stdin, drives it, and writes one JSON summary on stdout.
Two modes drive the same scenario:

- `raw` (the default) and `http`: `concurrency` tasks send the scenario's requests to the
  service over loopback, one keep-alive connection each, through a minimal HTTP/1.1 client
  (`raw`) or one `httpx.AsyncClient` (`http`, a realistic but CPU-hungry client);
- `sql`: the ceiling. The same tasks issue the statements the service issues for that
  request, straight through an asyncpg pool as the service role (`SET ROLE`), one
  transaction per operation, no HTTP. The statements are the service's own: this module
  calls the repository functions the service calls (and, for placing an order, the order
  service itself), so the SQL cannot drift. Each change also writes its audit entry
  (`audit.repository.insert`), as the service's request transaction does.

Both modes turn the spec into the same sequence of steps (`steps`): task `index` of the
`mixed` scenario draws its steps from a generator seeded with `index`, so the service and
its ceiling see the same blend of tenants, items and operations.

Both stop at `duration` seconds or after `max_requests` operations, whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit
from uuid import UUID

Operation = Callable[[int], Awaitable[str]]
"""One operation by task `index`; returns its outcome (an HTTP status, `ok`, `refused`),
prefixed by its kind and a space when a scenario blends kinds (`read 200`)."""

LIST_LIMIT = 50
ORDER_LINES = 3
MIXED_READ, MIXED_STOCK = 0.80, 0.95
"""`mixed`: below 0.80 a read, below 0.95 a stock operation, else an order."""


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list: the smallest value with at least
    `fraction` of the values at or below it (0.0 when empty)."""
    if not ordered:
        return 0.0
    # The epsilon keeps a product like 0.07 * 100 = 7.000000000000001 at rank 7.
    rank = math.ceil(fraction * len(ordered) - 1e-9)
    return ordered[max(0, min(len(ordered), rank) - 1)]


def summary(latencies: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max in milliseconds of unordered `latencies` (seconds)."""
    ordered = sorted(latencies)
    return {
        name: round(percentile(ordered, fraction) * 1000, 2)
        for name, fraction in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
    }


async def drive(
    operation: Operation, *, concurrency: int, duration: float, max_requests: int
) -> dict[str, Any]:
    """Run `operation` from `concurrency` tasks until the time or the count is spent."""
    latencies: list[float] = []
    by_kind: defaultdict[str, list[float]] = defaultdict(list)
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
            latency = time.perf_counter() - before
            latencies.append(latency)
            outcomes[outcome] += 1
            kind, blended, _ = outcome.partition(" ")
            if blended:
                by_kind[kind].append(latency)

    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    elapsed = time.perf_counter() - started
    result: dict[str, Any] = {
        "operations": len(latencies),
        "elapsed_seconds": round(elapsed, 3),
        "ops_per_second": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "latency_ms": summary(latencies),
        "outcomes": dict(sorted(outcomes.items())),
        # The load generator's own CPU: near `elapsed_seconds` means it, not the system
        # under test, may be what limits the rate.
        "client_cpu_seconds": round(time.process_time() - cpu_started, 2),
    }
    if by_kind:
        result["latency_ms_by_kind"] = {
            kind: {"operations": len(values), **summary(values)}
            for kind, values in sorted(by_kind.items())
        }
    return result


# --- what each task does ----------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One operation: its kind, the tenant it runs in and what it touches."""

    kind: str
    """`read`, `add`, `reserve`, `order`, `list-items` or `list-orders`."""
    tenant_id: str
    token: str
    location_id: str
    item_ids: tuple[str, ...] = ()
    cursor: str | None = None


def order_items(item_ids: list[str], start: int) -> tuple[str, ...]:
    """`ORDER_LINES` distinct items from `start` on (wrapping)."""
    return tuple(item_ids[(start + line) % len(item_ids)] for line in range(ORDER_LINES))


def fixed_step(spec: dict[str, Any], index: int) -> Step:
    """Task `index`'s step in a single-kind scenario (the same step every time)."""
    scenario = spec["scenario"]
    items = spec["item_ids"]
    common = {
        "tenant_id": spec["tenant_id"],
        "token": spec.get("token", ""),
        "location_id": spec["location_id"],
    }
    if scenario in ("list-items", "list-orders"):
        return Step(kind=scenario, cursor=spec["cursor"], **common)
    if scenario == "order":
        return Step(kind="order", item_ids=order_items(items, index * ORDER_LINES), **common)
    kind = {"hot-sku": "reserve", "adjust": "add", "read": "read"}[scenario]
    return Step(kind=kind, item_ids=(items[index % len(items)],), **common)


def steps(spec: dict[str, Any], index: int) -> Callable[[], Step]:
    """Task `index`'s next step, again and again."""
    if spec["scenario"] != "mixed":
        step = fixed_step(spec, index)
        return lambda: step
    tenants = spec["tenants"]
    chance = random.Random(index)

    def draw() -> Step:
        tenant = tenants[chance.randrange(len(tenants))]
        items = tenant["item_ids"]
        roll = chance.random()
        common = {
            "tenant_id": tenant["tenant_id"],
            "token": tenant["token"],
            "location_id": tenant["location_id"],
        }
        if roll < MIXED_READ:
            return Step(kind="read", item_ids=(chance.choice(items),), **common)
        if roll < MIXED_STOCK:
            return Step(kind="add", item_ids=(chance.choice(items),), **common)
        return Step(
            kind="order", item_ids=order_items(items, chance.randrange(len(items))), **common
        )

    return draw


def http_request(step: Step) -> tuple[str, str, dict[str, Any] | None]:
    """Method, path and JSON body of `step`."""
    prefix = f"/api/v1/{step.tenant_id}"
    if step.kind == "read":
        return "GET", f"{prefix}/inventory/{step.item_ids[0]}", None
    if step.kind in ("list-items", "list-orders"):
        query = urlencode({"limit": LIST_LIMIT, **({"cursor": step.cursor} if step.cursor else {})})
        collection = "inventory" if step.kind == "list-items" else "orders"
        return "GET", f"{prefix}/{collection}?{query}", None
    if step.kind == "order":
        body: dict[str, Any] = {
            "customer": {"email": "bench@example.com", "name": "Bench"},
            "currency": "USD",
            "lines": [
                {"item_id": item_id, "quantity": 1, "unit_price": "9.99"}
                for item_id in step.item_ids
            ],
        }
        return "POST", f"{prefix}/orders", body
    body = {
        "operation": step.kind,
        "quantity": 1,
        "location_id": step.location_id,
        "reason": "sale" if step.kind == "reserve" else "received",
    }
    return "PATCH", f"{prefix}/inventory/{step.item_ids[0]}/stock", body


def outcome(spec: dict[str, Any], step: Step, status: str) -> str:
    return f"{step.kind} {status}" if spec["scenario"] == "mixed" else status


# --- the service, over HTTP -------------------------------------------------------------


async def run_http(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx

    concurrency = spec["concurrency"]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    nexts = [steps(spec, index) for index in range(concurrency)]
    async with httpx.AsyncClient(base_url=spec["base_url"], limits=limits, timeout=30.0) as client:

        async def operation(index: int) -> str:
            step = nexts[index]()
            method, path, body = http_request(step)
            response = await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {step.token}"}
            )
            return outcome(spec, step, str(response.status_code))

        return await drive(
            operation,
            concurrency=concurrency,
            duration=spec["duration"],
            max_requests=spec["max_requests"],
        )


class RawConnection:
    """A minimal HTTP/1.1 keep-alive client for one connection: a request sent, and its
    response read by its Content-Length.

    It costs a fraction of httpx's CPU per request, which matters when the load generator
    shares a 2-core machine with the service and PostgreSQL.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, request: bytes) -> str:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(request)
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


def raw_request(step: Step, host: str, port: int) -> bytes:
    method, path, body = http_request(step)
    payload = json.dumps(body).encode() if body is not None else b""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {step.token}\r\nAccept: application/json\r\n"
    )
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
    return (head + "\r\n").encode() + payload


async def run_raw(spec: dict[str, Any]) -> dict[str, Any]:
    url = urlsplit(spec["base_url"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    concurrency = spec["concurrency"]
    connections = [RawConnection(host, port) for _ in range(concurrency)]
    nexts = [steps(spec, index) for index in range(concurrency)]
    rendered: dict[Step, bytes] = {}

    async def operation(index: int) -> str:
        step = nexts[index]()
        request = rendered.get(step)
        if request is None:
            request = raw_request(step, host, port)
            if spec["scenario"] != "mixed":  # a fixed step: render it once
                rendered[step] = request
        return outcome(spec, step, await connections[index].send(request))

    try:
        return await drive(
            operation,
            concurrency=concurrency,
            duration=spec["duration"],
            max_requests=spec["max_requests"],
        )
    finally:
        for connection in connections:
            await connection.close()


# --- the ceiling: the same statements through asyncpg ----------------------------------


async def run_sql(spec: dict[str, Any]) -> dict[str, Any]:
    import asyncpg

    from bench import statements
    from shelfkeeper.audit import service as audit_service
    from shelfkeeper.auth.principal import Principal, Role
    from shelfkeeper.config import Settings
    from shelfkeeper.db.database import init_connection, keep_session
    from shelfkeeper.db.migrate import SERVICE_ROLE
    from shelfkeeper.inventory import repository as inventory
    from shelfkeeper.inventory import service as inventory_service
    from shelfkeeper.kit.pagination import keyset
    from shelfkeeper.order import repository as order_repository
    from shelfkeeper.order import service as order_service
    from shelfkeeper.order.blind_index import BlindIndex
    from shelfkeeper.order.schemas import OrderCreate
    from shelfkeeper.privacy import service as privacy_service
    from shelfkeeper.tenant import repository as tenant

    async def init(connection: Any) -> None:
        await init_connection(connection, role=SERVICE_ROLE)

    # The service's master key, as `create_app` names it: orders seal their customer under
    # the tenant's data key, wrapped by this key (the service may have created it).
    settings = Settings(master_key=spec["master_key"])
    privacy_service.use_master_key(settings)
    blind_index = BlindIndex(settings.master_key_bytes)
    principals: dict[str, Principal] = {}
    orders: dict[Step, OrderCreate] = {}

    def principal_of(tenant_id: str) -> Principal:
        principal = principals.get(tenant_id)
        if principal is None:
            principal = Principal(
                subject="bench",
                tenant_id=tenant_id,
                roles=frozenset({Role.ADMIN}),
                credential="jwt",
            )
            principals[tenant_id] = principal
        return principal

    def order_of(step: Step) -> OrderCreate:
        # Parsed once per distinct body, outside the measured work: the ceiling has no
        # request to parse.
        body = orders.get(step)
        if body is None:
            body = OrderCreate.model_validate(http_request(step)[2])
            orders[step] = body
        return body

    # The service's pool settings, reset on release included (`keep_session`: none).
    pool = await asyncpg.create_pool(
        spec["dsn"],
        min_size=spec["pool_size"],
        max_size=spec["pool_size"],
        init=init,
        reset=keep_session,
    )

    async def audit_entry(connection: Any, step: Step, action: str, entity: str) -> None:
        await statements.audit_entry(
            connection,
            tenant_id=step.tenant_id,
            entity_id=step.item_ids[0],
            action=action,
            entity=entity,
            operation=step.kind,
        )

    async def read(connection: Any, step: Step) -> str:
        row = await statements.read(
            connection, tenant_id=step.tenant_id, item_id=UUID(step.item_ids[0])
        )
        return "ok" if row is not None else "missing"

    async def adjust(connection: Any, step: Step) -> str:
        row = await statements.adjust(
            connection,
            tenant_id=step.tenant_id,
            item_id=UUID(step.item_ids[0]),
            location_id=UUID(step.location_id),
            operation=step.kind,
        )
        return "ok" if row is not None else "refused"

    placed_by = order_service.PlacedBy(
        origin=audit_service.Origin(
            actor="user:bench", role="admin", request_id=None, client_address="127.0.0.1"
        ),
        action="create_order",
    )

    async def order(connection: Any, step: Step) -> str:
        body = order_of(step)
        try:
            async with connection.transaction():
                await tenant.enter(connection, step.tenant_id)
                # The service writes the audit entry itself (before the order's number), as
                # it does for the request: the same statements in the same order.
                await order_service.create(
                    connection,
                    principal_of(step.tenant_id),
                    body=body,
                    blind_index=blind_index,
                    audit=placed_by,
                )
        except Exception as error:  # the service's 4xx problems
            return f"refused:{type(error).__name__}"
        return "ok"

    async def list_items(connection: Any, step: Step) -> str:
        page = keyset(
            sort="created_at",
            fields=inventory_service.ITEM_SORT_FIELDS,
            cursor=step.cursor,
            limit=LIST_LIMIT,
            first_parameter=6,
        )
        async with connection.transaction(readonly=True):
            await tenant.enter(connection, step.tenant_id)
            rows = await inventory.list_items(
                connection, tenant_id=step.tenant_id, keyset=page, filters=inventory.ItemFilter()
            )
        return "ok" if rows else "empty"

    async def list_orders(connection: Any, step: Step) -> str:
        page = keyset(
            sort="created_at",
            fields=order_service.SORT_FIELDS,
            cursor=step.cursor,
            limit=LIST_LIMIT,
            first_parameter=6,
        )
        async with connection.transaction(readonly=True):
            await tenant.enter(connection, step.tenant_id)
            rows = await order_repository.list_page(
                connection,
                tenant_id=step.tenant_id,
                keyset=page,
                filters=order_repository.OrderFilter(),
            )
        return "ok" if rows else "empty"

    actions: dict[str, Callable[[Any, Step], Awaitable[str]]] = {
        "read": read,
        "add": adjust,
        "reserve": adjust,
        "order": order,
        "list-items": list_items,
        "list-orders": list_orders,
    }
    nexts = [steps(spec, index) for index in range(spec["concurrency"])]

    async def operation(index: int) -> str:
        step = nexts[index]()
        async with pool.acquire() as connection:
            return outcome(spec, step, await actions[step.kind](connection, step))

    try:
        return await drive(
            operation,
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
