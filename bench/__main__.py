"""The benchmark harness: `python -m bench [--scenarios hot-sku,adjust,...] [--workers 1]`.

One run: a fresh database `bench_<random>` on the server at `--database-url`, migrated; the
service (`shelfkeeper serve --workers N`) as a subprocess on a free loopback port; data seeded
through the API; then, per scenario, the load from a separate process (`bench.load`) against
the service, and right after it the same scenario's ceiling (the service's own statements
straight through asyncpg, no HTTP) from another such process. Results go to
`bench/results/<name>.json` and, unless `--no-docs`, to the table in docs/benchmarks.md.
The server is stopped and the database dropped however the run ends.

`--concurrency-sweep 1,4,16,64` runs the scenarios again at each of those concurrencies
(and `bench.plots` draws them); `--scale` reruns them after `bench.scale` has written the
large data set into the same database, and compares; `--profile adjust,read` samples the
worker with py-spy while the service side of those scenarios runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import psutil

from bench import plots, scale
from bench.load import LIST_LIMIT
from shelfkeeper.auth.tokens import issue_token
from shelfkeeper.config import Settings
from shelfkeeper.db import migrate
from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.kit.pagination import encode_cursor
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
JWT_SECRET = "bench-secret-" + "0123456789abcdef" * 3
MASTER_KEY = "bench-master-key-" + "0123456789abcdef" * 2
TENANT_ID = "bench"
SCENARIOS = ("hot-sku", "adjust", "read", "order", "list-items", "list-orders", "mixed")
CONCURRENCY = {
    "hot-sku": 64,
    "adjust": 64,
    "read": 32,
    "order": 16,
    "list-items": 16,
    "list-orders": 16,
    "mixed": 32,
}
FLOOR_SCENARIOS = ("read", "adjust")
"""The scenarios `bench.floor` serves."""
DISTINCT_ITEMS = 64
SEED_ON_HAND = 100_000
"""What each `adjust`/`read`/`order` item starts with (their levels exist before the load)."""
MIXED_TENANTS = 100
MIXED_ITEMS = 8
"""`mixed`: tenants, and items (each holding SEED_ON_HAND) per tenant."""
DEEP = 0.9
"""`list-*`: the cursor points this far into the bench tenant's list (by created_at)."""


def say(message: str) -> None:
    sys.stderr.write(f"bench: {message}\n")
    sys.stderr.flush()


def with_database(url: str, database: str) -> str:
    base, _, query = url.partition("?")
    authority, _, _old = base.rpartition("/")
    return f"{authority}/{database}" + (f"?{query}" if query else "")


async def execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- memory -----------------------------------------------------------------------------


async def answering(
    process: asyncio.subprocess.Process, url: str, *, name: str, ready: int | None = 200
) -> None:
    """Wait until `url` answers (with status `ready`, or anything when None), for 60 s at
    most; raise if `process` exits first."""
    async with httpx.AsyncClient(timeout=2.0) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
            try:
                status = (await client.get(url)).status_code
                if ready is None or status == ready:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} was not ready within 60 s")


def worker_processes(server: psutil.Process) -> list[psutil.Process]:
    """uvicorn's workers: its spawned children, or the server itself with one worker."""
    children = [
        child
        for child in server.children(recursive=True)
        if "resource_tracker" not in " ".join(child.cmdline())
    ]
    return children or [server]


def cpu_seconds(server: psutil.Process) -> float:
    """User and system CPU the workers have used so far."""
    total = 0.0
    for process in worker_processes(server):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rss_mb(server: psutil.Process) -> list[float]:
    sizes = []
    for process in worker_processes(server):
        try:
            sizes.append(round(process.memory_info().rss / 2**20, 1))
        except psutil.NoSuchProcess:
            continue
    return sizes


def py_spy() -> str | None:
    """py-spy on the PATH, else beside this Python (the project's .venv)."""
    beside = Path(sys.executable).parent / "py-spy"
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


# --- the run ----------------------------------------------------------------------------


class Run:
    def __init__(self, arguments: argparse.Namespace, dsn: str, name: str) -> None:
        self.arguments = arguments
        self.dsn = dsn
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(
            database_url=dsn,
            jwt_secret=JWT_SECRET,
            database_pool_max_size=arguments.pool_size,
            master_key=MASTER_KEY,
        )
        self.token = issue_token(
            self.settings,
            subject="bench",
            tenant_id=TENANT_ID,
            roles=["admin"],
            ttl_seconds=24 * 3600,
        )
        self.server: asyncio.subprocess.Process | None = None
        self.floor: asyncio.subprocess.Process | None = None
        self.floor_port = free_port()
        self.environment = {
            **os.environ,
            "DATABASE_URL": dsn,
            "SHELFKEEPER_JWT_SECRET": JWT_SECRET,
            "SHELFKEEPER_MASTER_KEY": MASTER_KEY,
            "SHELFKEEPER_DATABASE_POOL_MAX_SIZE": str(arguments.pool_size),
            "SHELFKEEPER_RATE_LIMIT_PER_SECOND": "0",
            "SHELFKEEPER_MAINTENANCE_INTERVAL_SECONDS": "0",
            "SHELFKEEPER_LOG_LEVEL": "WARNING",
        }

    # -- the service --

    async def start_server(self) -> None:
        self.server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shelfkeeper.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.arguments.workers),
            env=self.environment,
            stdout=asyncio.subprocess.DEVNULL,
        )
        await answering(self.server, f"{self.base_url}/readyz", name="the server")

    async def stop_server(self) -> None:
        for process in (self.server, self.floor):
            if process is None or process.returncode is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=20)
            except TimeoutError:
                process.kill()
                await process.wait()

    async def start_floor(self) -> None:
        """The framework floor (`bench.floor`): the same uvicorn, workers and pool size."""
        self.floor = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "bench.floor:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.floor_port),
            "--workers",
            str(self.arguments.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            env=self.environment,
            cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL,
        )
        await answering(
            self.floor, f"http://127.0.0.1:{self.floor_port}/", name="the floor", ready=None
        )

    # -- data --

    def token_for(self, tenant_id: str) -> str:
        return issue_token(
            self.settings,
            subject="bench",
            tenant_id=tenant_id,
            roles=["admin"],
            ttl_seconds=24 * 3600,
        )

    async def create_tenants(self, tenant_ids: list[str]) -> None:
        """Directly, as `shelfkeeper tenants create` does."""
        database = await Database.connect(
            self.dsn, role=migrate.SERVICE_ROLE, min_size=1, max_size=1
        )
        try:
            for tenant_id in tenant_ids:
                async with database.tenant_transaction(PLATFORM_SCOPE) as db:
                    await tenant_service.create(db, body=TenantCreate(id=tenant_id, name=tenant_id))
        finally:
            await database.close()

    async def stock_tenant(
        self, client: httpx.AsyncClient, tenant_id: str, skus: dict[str, int]
    ) -> dict[str, Any]:
        """A location, then one item per SKU holding its units, through the API."""
        headers = {"Authorization": f"Bearer {self.token_for(tenant_id)}"}
        prefix = f"/api/v1/{tenant_id}"

        async def send(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
            response = await client.request(method, prefix + path, json=body, headers=headers)
            if response.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
            document: dict[str, Any] = response.json()
            return document

        location = await send(
            "POST", "/locations", {"code": "WH", "name": "Warehouse", "kind": "warehouse"}
        )
        location_id: str = location["id"]
        items: dict[str, str] = {}
        for sku, on_hand in skus.items():
            items[sku] = await self.stock_item(client, tenant_id, location_id, sku, on_hand)
        return {"location_id": location_id, "items": items}

    async def stock_item(
        self, client: httpx.AsyncClient, tenant_id: str, location_id: str, sku: str, on_hand: int
    ) -> str:
        headers = {"Authorization": f"Bearer {self.token_for(tenant_id)}"}
        prefix = f"/api/v1/{tenant_id}"
        created = await client.post(
            f"{prefix}/inventory", json={"sku": sku, "name": f"Item {sku}"}, headers=headers
        )
        if created.status_code != 201:
            raise RuntimeError(f"POST /inventory: {created.status_code} {created.text}")
        item_id: str = created.json()["id"]
        added = await client.patch(
            f"{prefix}/inventory/{item_id}/stock",
            json={
                "operation": "add",
                "quantity": on_hand,
                "location_id": location_id,
                "reason": "received",
            },
            headers=headers,
        )
        if added.status_code != 200:
            raise RuntimeError(f"PATCH stock: {added.status_code} {added.text}")
        return item_id

    async def seed(self) -> dict[str, Any]:
        """The tenants (directly, as the CLI does), then locations, items and stock via the
        API: the bench tenant's, and for `mixed` its MIXED_TENANTS tenants'."""
        mixed = "mixed" in self.arguments.scenarios
        mixed_ids = [f"mix-{index:03d}" for index in range(MIXED_TENANTS)] if mixed else []
        await self.create_tenants([TENANT_ID, *mixed_ids])
        stock = self.arguments.hot_stock
        skus = {"HOT-SERVICE": stock, "HOT-CEILING": stock}
        skus.update({f"ITEM-{index:03d}": SEED_ON_HAND for index in range(DISTINCT_ITEMS)})
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30.0) as client:
            bench = await self.stock_tenant(client, TENANT_ID, skus)
            gate = asyncio.Semaphore(8)

            async def mixed_tenant(tenant_id: str) -> dict[str, Any]:
                async with gate:
                    seeded = await self.stock_tenant(
                        client,
                        tenant_id,
                        {f"MIX-{index}": SEED_ON_HAND for index in range(MIXED_ITEMS)},
                    )
                return {
                    "tenant_id": tenant_id,
                    "token": self.token_for(tenant_id),
                    "location_id": seeded["location_id"],
                    "item_ids": list(seeded["items"].values()),
                }

            tenants = await asyncio.gather(*(mixed_tenant(each) for each in mixed_ids))
        items = bench["items"]
        return {
            "location_id": bench["location_id"],
            "hot_service": items["HOT-SERVICE"],
            "hot_ceiling": items["HOT-CEILING"],
            "distinct": [items[f"ITEM-{index:03d}"] for index in range(DISTINCT_ITEMS)],
            "mixed_tenants": tenants,
        }

    async def fresh_hot_items(self, data: dict[str, Any], suffix: str) -> None:
        """New hot levels (the first pass sold the old ones out)."""
        stock = self.arguments.hot_stock
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30.0) as client:
            for key, sku in (("hot_service", "HOT-SERVICE"), ("hot_ceiling", "HOT-CEILING")):
                data[key] = await self.stock_item(
                    client, TENANT_ID, data["location_id"], f"{sku}-{suffix}", stock
                )

    async def deep_cursor(self, table: str) -> str | None:
        """A `created_at` cursor DEEP into the bench tenant's `table`, at most LIST_LIMIT + 1
        rows before its end (None when empty)."""
        connection = await asyncpg.connect(self.dsn)
        try:
            count: int = await connection.fetchval(
                f"SELECT count(*) FROM {table} WHERE tenant_id = $1", TENANT_ID
            )
            # DEEP into the list, but with a full page after it, so that a small list's page
            # is as long as a large one's.
            row = await connection.fetchrow(
                f"SELECT created_at, id FROM {table} WHERE tenant_id = $1 "
                "ORDER BY created_at, id OFFSET $2 LIMIT 1",
                TENANT_ID,
                max(0, min(int(count * DEEP), count - LIST_LIMIT - 1)),
            )
        finally:
            await connection.close()
        if row is None:
            return None
        return encode_cursor(sort="created_at", value=row["created_at"], last_id=row["id"])

    # -- load --

    async def load(
        self,
        spec: dict[str, Any],
        profile: Path | None = None,
        target: asyncio.subprocess.Process | None = None,
    ) -> dict[str, Any]:
        """Run `bench.load` in its own process against `target` (the service by default);
        sample the workers' RSS meanwhile, and with `profile`, record the (first) worker's
        stacks with py-spy into that file."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        target = target or self.server
        assert target is not None
        server = psutil.Process(target.pid)
        peak: list[float] = []

        async def sample() -> None:
            while True:
                sizes = rss_mb(server)
                if not peak:
                    peak.extend(sizes)
                else:
                    peak[:] = [max(a, b) for a, b in zip(peak, sizes, strict=False)]
                await asyncio.sleep(0.25)

        cpu_before = cpu_seconds(server)
        sampler = asyncio.create_task(sample())
        spy = await self.spy(server, profile, spec["duration"]) if profile else None
        try:
            out, _ = await process.communicate(json.dumps(spec).encode())
        finally:
            sampler.cancel()
            if spy is not None:
                try:
                    await asyncio.wait_for(spy.wait(), timeout=spec["duration"] + 30)
                except TimeoutError:
                    spy.send_signal(signal.SIGINT)
                    await spy.wait()
        if process.returncode != 0:
            raise RuntimeError(f"bench.load exited with {process.returncode}")
        result: dict[str, Any] = json.loads(out)
        if spec["mode"] != "sql":
            result["worker_rss_mb_peak"] = peak
            result["worker_rss_mb_after"] = rss_mb(server)
            result["worker_cpu_seconds"] = round(cpu_seconds(server) - cpu_before, 2)
        return result

    async def spy(
        self, server: psutil.Process, output: Path, duration: float
    ) -> asyncio.subprocess.Process | None:
        """py-spy sampling the first worker for `duration` seconds (raw collapsed stacks)."""
        executable = py_spy()
        if executable is None:
            say("py-spy not found; no profile")
            return None
        worker = worker_processes(server)[0]
        return await asyncio.create_subprocess_exec(
            executable,
            "record",
            "--pid",
            str(worker.pid),
            "--duration",
            str(max(1, int(duration))),
            "--rate",
            "200",
            "--format",
            "raw",
            "--nonblocking",
            "--nolineno",
            "--output",
            str(output),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def scenario(
        self,
        name: str,
        data: dict[str, Any],
        *,
        concurrency: int | None = None,
        duration: float | None = None,
        label: str = "",
    ) -> dict[str, Any]:
        concurrency = concurrency or CONCURRENCY[name]
        common: dict[str, Any] = {
            "scenario": name,
            "tenant_id": TENANT_ID,
            "location_id": data["location_id"],
            "concurrency": concurrency,
            "duration": duration or self.arguments.duration,
            "max_requests": self.arguments.max_requests,
            "master_key": MASTER_KEY,
        }
        if name == "hot-sku":
            # Demand is bounded at `hot_demand` units: more than the level holds.
            common["max_requests"] = self.arguments.hot_demand
        if name in ("list-items", "list-orders"):
            common["cursor"] = await self.deep_cursor(
                "item" if name == "list-items" else "sales_order"
            )
        if name == "mixed":
            common["tenants"] = data["mixed_tenants"]
        items = {
            "hot-sku": ([data["hot_service"]], [data["hot_ceiling"]]),
        }.get(name, (data["distinct"], data["distinct"]))
        profile = None
        if name in self.arguments.profile and not label:
            profile = RESULTS / f"{self.name}-profile-{name}.txt"
        say(f"{name}{label}: service ({concurrency} clients)")
        service = await self.load(
            {
                **common,
                "mode": self.arguments.client,
                "item_ids": items[0],
                "base_url": self.base_url,
                "token": self.token,
            },
            profile=profile,
        )
        if profile is not None and profile.exists():
            service["profile"] = {
                "file": str(profile.relative_to(ROOT)),
                **profile_summary(profile.read_text()),
            }
        floor = None
        if self.floor is not None and name in FLOOR_SCENARIOS:
            say(f"{name}{label}: framework floor ({concurrency} clients)")
            floor = await self.load(
                {
                    **common,
                    "mode": self.arguments.client,
                    "item_ids": items[0],
                    "base_url": f"http://127.0.0.1:{self.floor_port}",
                    "token": self.token,
                },
                target=self.floor,
            )
        say(f"{name}{label}: ceiling ({concurrency} tasks, raw asyncpg)")
        pool_size = min(concurrency, self.arguments.workers * self.settings.database_pool_max_size)
        ceiling = await self.load(
            {**common, "mode": "sql", "item_ids": items[1], "dsn": self.dsn, "pool_size": pool_size}
        )
        result: dict[str, Any] = {
            "concurrency": concurrency,
            "ceiling_pool_size": pool_size,
            "service": service,
            "ceiling": ceiling,
            "ratio": ratios(service, ceiling),
        }
        if floor is not None:
            result["floor"] = floor
            result["floor_ratio"] = ratios(floor, ceiling)
            result["service_over_floor"] = ratios(service, floor)
        if name == "hot-sku":
            result["check"] = await self.check_hot(data, service, ceiling)
        return result

    async def check_hot(
        self, data: dict[str, Any], service: dict[str, Any], ceiling: dict[str, Any]
    ) -> dict[str, Any]:
        """Zero oversell: reserved equals the successes, and never exceeds on hand."""
        connection = await asyncpg.connect(self.dsn)
        try:
            levels = {
                key: await connection.fetchrow(
                    "SELECT s.on_hand, s.reserved FROM stock_level s "
                    "JOIN variant v ON v.tenant_id = s.tenant_id AND v.id = s.variant_id "
                    "WHERE v.tenant_id = $1 AND v.item_id = $2",
                    TENANT_ID,
                    UUID(data[key]),
                )
                for key in ("hot_service", "hot_ceiling")
            }
        finally:
            await connection.close()
        check: dict[str, Any] = {}
        for key, run, success in (
            ("hot_service", service, "200"),
            ("hot_ceiling", ceiling, "ok"),
        ):
            level = levels[key]
            assert level is not None, f"the {key} level is gone"
            successes = run["outcomes"].get(success, 0)
            errors = sum(count for outcome, count in run["outcomes"].items() if "error" in outcome)
            check[key.removeprefix("hot_")] = {
                "on_hand": level["on_hand"],
                "reserved": level["reserved"],
                "successes": successes,
                "rejections": run["operations"] - successes - errors,
                "errors": errors,
                "sold_out": level["reserved"] == level["on_hand"],
                "ok": level["reserved"] == successes and level["reserved"] <= level["on_hand"],
            }
        return check

    async def verify(self) -> dict[str, Any]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shelfkeeper.cli",
            "verify",
            "--tenant",
            TENANT_ID,
            env=self.environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        return {"exit_code": process.returncode, "output": out.decode().strip()}

    async def sweep(self, data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Every scenario but hot-sku (whose stock runs out) at each sweep concurrency."""
        found: dict[str, list[dict[str, Any]]] = {}
        for name in self.arguments.scenarios:
            if name == "hot-sku":
                continue
            found[name] = [
                await self.scenario(
                    name,
                    data,
                    concurrency=concurrency,
                    duration=self.arguments.sweep_duration,
                    label=f" @{concurrency}",
                )
                for concurrency in self.arguments.concurrency_sweep
            ]
        return found

    async def execute(self) -> dict[str, Any]:
        await self.start_server()
        try:
            if self.arguments.floor:
                await self.start_floor()
            assert self.server is not None
            server = psutil.Process(self.server.pid)
            say(f"server ready on {self.base_url} ({self.arguments.workers} worker(s))")
            rss_started = rss_mb(server)
            data = await self.seed()
            await asyncio.sleep(1.0)
            rss_idle = rss_mb(server)
            outcome: dict[str, Any] = {}
            scenarios = {name: await self.scenario(name, data) for name in self.arguments.scenarios}
            if self.arguments.concurrency_sweep:
                outcome["sweep"] = await self.sweep(data)
            if self.arguments.scale:
                outcome["scale"] = await self.scaled(data, scenarios)
            rss_end = rss_mb(server)
            say("verify")
            verify = await self.verify()
        finally:
            await self.stop_server()
        return {
            "worker_rss_mb": {"started": rss_started, "idle_after_seed": rss_idle, "end": rss_end},
            "scenarios": scenarios,
            **outcome,
            "verify": verify,
        }

    async def scaled(
        self, data: dict[str, Any], small: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        """Write the scale data set, rerun the scenarios, and compare with the small one."""
        size = scale.Scale(
            tenants=self.arguments.scale_tenants,
            items=self.arguments.scale_items,
            movements=self.arguments.scale_movements,
            orders=self.arguments.scale_orders,
        )
        say(f"scale: generating {size}")
        generated = await scale.generate(
            self.dsn,
            size,
            big_tenant=TENANT_ID,
            big_location=UUID(data["location_id"]),
            master_key=MASTER_KEY.encode(),
            progress=True,
        )
        say(f"scale: {sum(generated['rows'].values())} rows in {generated['seconds']} s")
        generated["database_mb"] = await database_mb(self.dsn)
        await self.fresh_hot_items(data, "SCALE")
        await asyncio.sleep(1.0)
        scenarios = {
            name: await self.scenario(name, data, label=" (scale)")
            for name in self.arguments.scenarios
        }
        return {
            "generated": generated,
            "scenarios": scenarios,
            "growth": {
                name: growth(small[name], scenarios[name]) for name in scenarios if name in small
            },
        }


async def database_mb(dsn: str) -> float:
    connection = await asyncpg.connect(dsn)
    try:
        size: int = await connection.fetchval("SELECT pg_database_size(current_database())")
    finally:
        await connection.close()
    return round(size / 2**20, 1)


def growth(small: dict[str, Any], large: dict[str, Any]) -> dict[str, Any]:
    """Large over small: each side's p50, p95, p99 and throughput."""

    def over(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    return {
        side: {
            "ops_per_second": over(large[side]["ops_per_second"], small[side]["ops_per_second"]),
            **{
                name: over(large[side]["latency_ms"][name], small[side]["latency_ms"][name])
                for name in ("p50", "p95", "p99")
            },
        }
        for side in ("service", "ceiling")
    }


def profile_summary(collapsed: str, top: int = 25) -> dict[str, Any]:
    """The heaviest functions of py-spy's raw (collapsed) stacks: for each, the share of
    samples in which it is on the stack (inclusive) and at the top (self)."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count

    def shares(counter: Counter[str]) -> list[list[Any]]:
        return [[frame, round(count / total, 4)] for frame, count in counter.most_common(top)]

    return {"samples": total, "inclusive": shares(inclusive), "self": shares(own)} if total else {}


def ratios(service: dict[str, Any], ceiling: dict[str, Any]) -> dict[str, float | None]:
    """Service over ceiling: throughput (< 1 means slower) and latency (> 1 means slower)."""

    def over(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    return {
        "throughput": over(service["ops_per_second"], ceiling["ops_per_second"]),
        **{
            f"latency_{name}": over(service["latency_ms"][name], ceiling["latency_ms"][name])
            for name in ("p50", "p95", "p99")
        },
    }


# --- reporting --------------------------------------------------------------------------


def latencies(run: dict[str, Any]) -> str:
    return " / ".join(f"{run['latency_ms'][each]:.1f}" for each in ("p50", "p95", "p99"))


def scenario_rows(scenarios: dict[str, Any]) -> list[str]:
    """The per-scenario table: service beside ceiling."""
    lines = [
        "| scenario | clients | service ops/s | ceiling ops/s | throughput ratio "
        "| service p50 / p95 / p99 ms | ceiling p50 / p95 / p99 ms | p50 ratio | p99 ratio "
        "| service outcomes | elapsed / client CPU / worker CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in scenarios.items():
        service, ceiling, ratio = result["service"], result["ceiling"], result["ratio"]
        outcomes = ", ".join(f"{key}: {value}" for key, value in service["outcomes"].items())
        lines.append(
            f"| {name} | {result['concurrency']} | {service['ops_per_second']:.0f} "
            f"| {ceiling['ops_per_second']:.0f} | {ratio['throughput']} "
            f"| {latencies(service)} | {latencies(ceiling)} | {ratio['latency_p50']} "
            f"| {ratio['latency_p99']} "
            f"| {outcomes} | {service['elapsed_seconds']:.1f} / {service['client_cpu_seconds']} "
            f"/ {service.get('worker_cpu_seconds')} |"
        )
    return lines


def floor_rows(scenarios: dict[str, Any]) -> list[str]:
    """The framework floor (`bench.floor`) beside the service and the ceiling."""
    floored = {name: result for name, result in scenarios.items() if "floor" in result}
    if not floored:
        return []
    lines = [
        "",
        "Framework floor (`bench.floor`: the same statements behind a bare FastAPI route, "
        "same uvicorn and client):",
        "",
        "| scenario | service ops/s | floor ops/s | ceiling ops/s | floor / ceiling "
        "| service / floor | floor p50 / p95 / p99 ms | floor worker CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, result in floored.items():
        service, floor, ceiling = result["service"], result["floor"], result["ceiling"]
        lines.append(
            f"| {name} | {service['ops_per_second']:.0f} | {floor['ops_per_second']:.0f} "
            f"| {ceiling['ops_per_second']:.0f} | {result['floor_ratio']['throughput']} "
            f"| {result['service_over_floor']['throughput']} | {latencies(floor)} "
            f"| {floor.get('worker_cpu_seconds')} |"
        )
    return lines


def kind_rows(scenarios: dict[str, Any]) -> list[str]:
    """`mixed`, per kind of operation."""
    mixed = scenarios.get("mixed")
    if not mixed or "latency_ms_by_kind" not in mixed["service"]:
        return []
    lines = [
        "",
        "`mixed` per kind of operation (p50 / p95 / p99 ms):",
        "",
        "| kind | service operations | service | ceiling | p50 ratio |",
        "|---|---|---|---|---|",
    ]
    service = mixed["service"]["latency_ms_by_kind"]
    ceiling = mixed["ceiling"].get("latency_ms_by_kind", {})
    for kind, run in service.items():
        other = ceiling.get(kind)
        ratio = round(run["p50"] / other["p50"], 3) if other and other["p50"] else None
        lines.append(
            f"| {kind} | {run['operations']} | {latencies({'latency_ms': run})} "
            f"| {latencies({'latency_ms': other}) if other else '-'} | {ratio} |"
        )
    return lines


def sweep_rows(sweep: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = [
        "",
        "Concurrency sweep (service / ceiling):",
        "",
        "| scenario | clients | ops/s | throughput ratio | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, points in sweep.items():
        for point in points:
            service, ceiling = point["service"], point["ceiling"]

            def pair(key: str, s: dict[str, Any] = service, c: dict[str, Any] = ceiling) -> str:
                return f"{s['latency_ms'][key]:.1f} / {c['latency_ms'][key]:.1f}"

            lines.append(
                f"| {name} | {point['concurrency']} | {service['ops_per_second']:.0f} / "
                f"{ceiling['ops_per_second']:.0f} | {point['ratio']['throughput']} "
                f"| {pair('p50')} | {pair('p95')} | {pair('p99')} |"
            )
    return lines


def scale_rows(found: dict[str, Any]) -> list[str]:
    generated = found["generated"]
    rows = ", ".join(f"{table} {count:,}" for table, count in generated["rows"].items())
    big = generated["big_tenant"]
    lines = [
        "",
        f"Scale data set: {generated['tenants']:,} tenants; {rows}; the bench tenant holds "
        f"{big['items']:,} of the items, {big['movements']:,} movements and {big['orders']:,} "
        f"orders. Generated in {generated['seconds']} s (COPY {generated['copy_seconds']} s, "
        f"then VACUUM ANALYZE and CHECKPOINT {generated.get('settle_seconds')} s); database "
        f"{generated.get('database_mb')} MB.",
        "",
        *scenario_rows(found["scenarios"]),
        *kind_rows(found["scenarios"]),
        "",
        "Growth, scale over small (same run, same server): p50 / p95 / p99 ratios and "
        "throughput ratio.",
        "",
        "| scenario | service p50 / p95 / p99 | service ops/s | ceiling p50 / p95 / p99 "
        "| ceiling ops/s |",
        "|---|---|---|---|---|",
    ]
    for name, grown in found["growth"].items():

        def triple(side: dict[str, Any]) -> str:
            return " / ".join(str(side[key]) for key in ("p50", "p95", "p99"))

        lines.append(
            f"| {name} | {triple(grown['service'])} | {grown['service']['ops_per_second']} "
            f"| {triple(grown['ceiling'])} | {grown['ceiling']['ops_per_second']} |"
        )
    return lines


def table(report: dict[str, Any]) -> str:
    """The Markdown summary of one run."""
    machine = report["machine"]
    lines = [
        f"Run `{report['name']}` ({report['started_at']}): {report['workers']} worker(s), "
        f"`{report['client']}` client, "
        f"{report['duration_seconds']} s per scenario and side, {machine['cpus']} CPUs, "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql']}.",
        "",
        *scenario_rows(report["scenarios"]),
        *kind_rows(report["scenarios"]),
        *floor_rows(report["scenarios"]),
        "",
    ]
    checks = [("", report["scenarios"].get("hot-sku", {}).get("check"))]
    if "scale" in report:
        checks.append((" (scale)", report["scale"]["scenarios"].get("hot-sku", {}).get("check")))
    for label, hot in checks:
        for side, check in (hot or {}).items():
            lines.append(
                f"- hot-sku{label} {side}: on hand {check['on_hand']}, reserved "
                f"{check['reserved']}, successes {check['successes']}, rejections "
                f"{check['rejections']}, errors {check['errors']}; oversell check "
                f"{'passed' if check['ok'] else 'FAILED'}"
                f"{'' if check['sold_out'] else ' (the level did not sell out)'}."
            )
    verify = report["verify"]
    lines.append(
        f"- `shelfkeeper verify --tenant {TENANT_ID}`: exit {verify['exit_code']} "
        f"({verify['output'].splitlines()[-1] if verify['output'] else 'no output'})."
    )
    memory = report["worker_rss_mb"]
    peaks = {
        name: result["service"].get("worker_rss_mb_peak")
        for name, result in report["scenarios"].items()
    }
    lines.append(
        f"- RSS per worker (MB; target under 150): idle {memory['idle_after_seed']}; "
        "peak under load "
        + ", ".join(f"{name} {peak}" for name, peak in peaks.items())
        + f"; at the end {memory.get('end')}."
    )
    if "sweep" in report:
        lines.extend(sweep_rows(report["sweep"]))
    if "scale" in report:
        lines.extend(scale_rows(report["scale"]))
    return "\n".join(lines) + "\n"


def write_docs(report: dict[str, Any]) -> None:
    text = DOCS.read_text() if DOCS.exists() else ""
    if TABLE_START not in text or TABLE_END not in text:
        say(f"{DOCS.relative_to(ROOT)} has no table markers; not updated")
        return
    head, _, rest = text.partition(TABLE_START)
    _, _, tail = rest.partition(TABLE_END)
    DOCS.write_text(f"{head}{TABLE_START}\n{table(report)}{TABLE_END}{tail}")


# --- entry point ------------------------------------------------------------------------


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        type=lambda text: [each.strip() for each in text.split(",") if each.strip()],
        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")
    parser.add_argument(
        "--pool-size",
        type=int,
        default=20,
        help="database connections per worker, and the ceiling's per worker (default 20, "
        "the service's default)",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per scenario and side (default 10)"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=1_000_000,
        help="operations per scenario and side at most (default 1000000)",
    )
    parser.add_argument(
        "--hot-stock", type=int, default=500, help="units the hot level holds (default 500)"
    )
    parser.add_argument(
        "--hot-demand",
        type=int,
        default=1500,
        help="hot-sku reservations attempted at most, per side (default 1500)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="the server's maintenance database (default: postgres on 127.0.0.1:5432)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "http"),
        default="raw",
        help="the service side's HTTP client: a minimal keep-alive one (raw, default) or httpx",
    )
    parser.add_argument(
        "--concurrency-sweep",
        default="",
        type=lambda text: [int(each) for each in text.split(",") if each.strip()],
        help="also run every scenario but hot-sku at these concurrencies, e.g. 1,4,16,64, "
        "and plot them",
    )
    parser.add_argument(
        "--sweep-duration",
        type=float,
        default=5.0,
        help="seconds per sweep point and side (default 5)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="then write the scale data set (bench.scale) and run the scenarios again",
    )
    defaults = scale.Scale()
    parser.add_argument("--scale-tenants", type=int, default=defaults.tenants)
    parser.add_argument("--scale-items", type=int, default=defaults.items)
    parser.add_argument("--scale-movements", type=int, default=defaults.movements)
    parser.add_argument("--scale-orders", type=int, default=defaults.orders)
    parser.add_argument(
        "--profile",
        default="",
        type=lambda text: [each.strip() for each in text.split(",") if each.strip()],
        help="scenarios whose service side py-spy samples (raw stacks in bench/results/)",
    )
    parser.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="do not run the framework floor (bench.floor) beside read and adjust",
    )
    parser.add_argument("--name", help="results file name (default: a timestamp)")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not update the table in docs/benchmarks.md"
    )
    parsed = parser.parse_args()
    unknown = [each for each in parsed.scenarios + parsed.profile if each not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if parsed.hot_demand <= parsed.hot_stock:
        parser.error("--hot-demand must exceed --hot-stock (the point of hot-sku)")
    return parsed


async def server_version(dsn: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


def main() -> None:
    parsed = arguments()
    # One master key for every process of the run: the server, the load and verify
    # processes and this one (tenants' data keys are wrapped by it, whoever creates them).
    os.environ["SHELFKEEPER_MASTER_KEY"] = MASTER_KEY
    started_at = datetime.now(UTC)
    name = parsed.name or f"run-{started_at:%Y%m%d-%H%M%S}"
    database = f"bench_{secrets.token_hex(6)}"
    dsn = with_database(parsed.database_url, database)
    RESULTS.mkdir(parents=True, exist_ok=True)
    say(f"creating database {database}")
    asyncio.run(execute(parsed.database_url, f'CREATE DATABASE "{database}"'))
    try:
        migrate.upgrade(dsn)
        outcome = asyncio.run(Run(parsed, dsn, name).execute())
        postgresql = asyncio.run(server_version(dsn))
    finally:
        asyncio.run(execute(parsed.database_url, f'DROP DATABASE IF EXISTS "{database}" (FORCE)'))
        say(f"dropped database {database}")
    report = {
        "name": name,
        "started_at": started_at.isoformat(timespec="seconds"),
        "workers": parsed.workers,
        "pool_size": parsed.pool_size,
        "client": parsed.client,
        "duration_seconds": parsed.duration,
        "sweep_duration_seconds": parsed.sweep_duration if parsed.concurrency_sweep else None,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "postgresql": postgresql,
            "load_average_after": [round(each, 2) for each in os.getloadavg()],
        },
        **outcome,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {path.relative_to(ROOT)}")
    if "sweep" in report:
        for drawn in plots.draw(report, RESULTS):
            say(f"wrote {drawn.relative_to(ROOT)}")
    if not parsed.no_docs:
        write_docs(report)
    sys.stdout.write(table(report))
    runs = [*report["scenarios"].values(), *report.get("scale", {}).get("scenarios", {}).values()]
    failed = report["verify"]["exit_code"] != 0 or any(
        not check["ok"] for result in runs for check in result.get("check", {}).values()
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
