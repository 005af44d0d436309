"""The benchmark harness: `python -m bench [--scenarios hot-sku,adjust,read] [--workers 1]`.

One run: a fresh database `bench_<random>` on the server at `--database-url`, migrated; the
service (`shelfkeeper serve --workers N`) as a subprocess on a free loopback port; data seeded
through the API; then, per scenario, the load from a separate process (`bench.load`) against
the service, and right after it the same scenario's ceiling (the service's own statements
straight through asyncpg, no HTTP) from another such process. Results go to
`bench/results/<name>.json` and, unless `--no-docs`, to the table in docs/benchmarks.md.
The server is stopped and the database dropped however the run ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import psutil

from shelfkeeper.auth.tokens import issue_token
from shelfkeeper.config import Settings
from shelfkeeper.db import migrate
from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.tenant import service as tenant_service
from shelfkeeper.tenant.schemas import TenantCreate

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
TABLE_START = "<!-- bench:table:start -->"
TABLE_END = "<!-- bench:table:end -->"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
JWT_SECRET = "bench-secret-" + "0123456789abcdef" * 3
TENANT_ID = "bench"
SCENARIOS = ("hot-sku", "adjust", "read")
CONCURRENCY = {"hot-sku": 64, "adjust": 64, "read": 32}
DISTINCT_ITEMS = 64
SEED_ON_HAND = 100_000
"""What each `adjust`/`read` item starts with (their levels exist before the load)."""


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


# --- the run ----------------------------------------------------------------------------


class Run:
    def __init__(self, arguments: argparse.Namespace, dsn: str) -> None:
        self.arguments = arguments
        self.dsn = dsn
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.settings = Settings(database_url=dsn, jwt_secret=JWT_SECRET)
        self.token = issue_token(
            self.settings,
            subject="bench",
            tenant_id=TENANT_ID,
            roles=["admin"],
            ttl_seconds=24 * 3600,
        )
        self.server: asyncio.subprocess.Process | None = None
        self.environment = {
            **os.environ,
            "DATABASE_URL": dsn,
            "SHELFKEEPER_JWT_SECRET": JWT_SECRET,
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
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2.0) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self.server.returncode is not None:
                    raise RuntimeError(f"the server exited with {self.server.returncode}")
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("the server was not ready within 60 s")

    async def stop_server(self) -> None:
        if self.server is None or self.server.returncode is not None:
            return
        self.server.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.server.wait(), timeout=20)
        except TimeoutError:
            self.server.kill()
            await self.server.wait()

    # -- data --

    async def seed(self) -> dict[str, Any]:
        """The tenant (directly, as the CLI does), then a location, items and stock via the API."""
        database = await Database.connect(
            self.dsn, role=migrate.SERVICE_ROLE, min_size=1, max_size=1
        )
        try:
            async with database.tenant_transaction(PLATFORM_SCOPE) as db:
                await tenant_service.create(db, body=TenantCreate(id=TENANT_ID, name="Bench"))
        finally:
            await database.close()
        headers = {"Authorization": f"Bearer {self.token}"}
        prefix = f"/api/v1/{TENANT_ID}"
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, timeout=30.0
        ) as client:

            async def send(method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
                response = await client.request(method, prefix + path, json=body)
                if response.status_code >= 300:
                    raise RuntimeError(f"{method} {path}: {response.status_code} {response.text}")
                document: dict[str, Any] = response.json()
                return document

            location = await send(
                "POST", "/locations", {"code": "WH", "name": "Warehouse", "kind": "warehouse"}
            )
            location_id = location["id"]

            async def item(sku: str, on_hand: int) -> str:
                created = await send("POST", "/inventory", {"sku": sku, "name": f"Item {sku}"})
                await send(
                    "PATCH",
                    f"/inventory/{created['id']}/stock",
                    {
                        "operation": "add",
                        "quantity": on_hand,
                        "location_id": location_id,
                        "reason": "received",
                    },
                )
                item_id: str = created["id"]
                return item_id

            stock = self.arguments.hot_stock
            return {
                "location_id": location_id,
                "hot_service": await item("HOT-SERVICE", stock),
                "hot_ceiling": await item("HOT-CEILING", stock),
                "distinct": [
                    await item(f"ITEM-{index:03d}", SEED_ON_HAND) for index in range(DISTINCT_ITEMS)
                ],
            }

    # -- load --

    async def load(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Run `bench.load` in its own process; sample the workers' RSS meanwhile."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.load",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
        )
        assert self.server is not None
        server = psutil.Process(self.server.pid)
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
        try:
            out, _ = await process.communicate(json.dumps(spec).encode())
        finally:
            sampler.cancel()
        if process.returncode != 0:
            raise RuntimeError(f"bench.load exited with {process.returncode}")
        result: dict[str, Any] = json.loads(out)
        if spec["mode"] != "sql":
            result["worker_rss_mb_peak"] = peak
            result["worker_rss_mb_after"] = rss_mb(server)
            result["worker_cpu_seconds"] = round(cpu_seconds(server) - cpu_before, 2)
        return result

    async def scenario(self, name: str, data: dict[str, Any]) -> dict[str, Any]:
        concurrency = CONCURRENCY[name]
        common = {
            "scenario": name,
            "tenant_id": TENANT_ID,
            "location_id": data["location_id"],
            "concurrency": concurrency,
            "duration": self.arguments.duration,
            "max_requests": self.arguments.max_requests,
        }
        if name == "hot-sku":
            # Demand is bounded at `hot_demand` units: more than the level holds.
            common["max_requests"] = self.arguments.hot_demand
        items = {
            "hot-sku": ([data["hot_service"]], [data["hot_ceiling"]]),
            "adjust": (data["distinct"], data["distinct"]),
            "read": (data["distinct"], data["distinct"]),
        }[name]
        say(f"{name}: service ({concurrency} clients)")
        service = await self.load(
            {
                **common,
                "mode": self.arguments.client,
                "item_ids": items[0],
                "base_url": self.base_url,
                "token": self.token,
            }
        )
        say(f"{name}: ceiling ({concurrency} tasks, raw asyncpg)")
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

    async def execute(self) -> dict[str, Any]:
        await self.start_server()
        try:
            assert self.server is not None
            say(f"server ready on {self.base_url} ({self.arguments.workers} worker(s))")
            rss_started = rss_mb(psutil.Process(self.server.pid))
            data = await self.seed()
            await asyncio.sleep(1.0)
            rss_idle = rss_mb(psutil.Process(self.server.pid))
            scenarios = {name: await self.scenario(name, data) for name in self.arguments.scenarios}
            say("verify")
            verify = await self.verify()
        finally:
            await self.stop_server()
        return {
            "worker_rss_mb": {"started": rss_started, "idle_after_seed": rss_idle},
            "scenarios": scenarios,
            "verify": verify,
        }


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


def table(report: dict[str, Any]) -> str:
    """The Markdown summary of one run."""
    machine = report["machine"]
    lines = [
        f"Run `{report['name']}` ({report['started_at']}): {report['workers']} worker(s), "
        f"`{report['client']}` client, "
        f"{report['duration_seconds']} s per scenario and side, {machine['cpus']} CPUs, "
        f"Python {machine['python']}, PostgreSQL {machine['postgresql']}.",
        "",
        "| scenario | clients | service ops/s | ceiling ops/s | throughput ratio "
        "| service p50 / p95 / p99 ms | ceiling p50 / p95 / p99 ms | p99 ratio "
        "| service outcomes | elapsed / client CPU / worker CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in report["scenarios"].items():
        service, ceiling, ratio = result["service"], result["ceiling"], result["ratio"]

        def latencies(run: dict[str, Any]) -> str:
            return " / ".join(f"{run['latency_ms'][each]:.1f}" for each in ("p50", "p95", "p99"))

        outcomes = ", ".join(f"{key}: {value}" for key, value in service["outcomes"].items())
        lines.append(
            f"| {name} | {result['concurrency']} | {service['ops_per_second']:.0f} "
            f"| {ceiling['ops_per_second']:.0f} | {ratio['throughput']} "
            f"| {latencies(service)} | {latencies(ceiling)} | {ratio['latency_p99']} "
            f"| {outcomes} | {service['elapsed_seconds']:.1f} / {service['client_cpu_seconds']} "
            f"/ {service.get('worker_cpu_seconds')} |"
        )
    lines.append("")
    hot = report["scenarios"].get("hot-sku", {}).get("check")
    if hot:
        for side, check in hot.items():
            lines.append(
                f"- hot-sku {side}: on hand {check['on_hand']}, reserved {check['reserved']}, "
                f"successes {check['successes']}, rejections {check['rejections']}, "
                f"errors {check['errors']}; oversell check {'passed' if check['ok'] else 'FAILED'}"
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
        "peak under load " + ", ".join(f"{name} {peak}" for name, peak in peaks.items()) + "."
    )
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
    parser.add_argument("--name", help="results file name (default: a timestamp)")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not update the table in docs/benchmarks.md"
    )
    parsed = parser.parse_args()
    unknown = [each for each in parsed.scenarios if each not in SCENARIOS]
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
    started_at = datetime.now(UTC)
    name = parsed.name or f"run-{started_at:%Y%m%d-%H%M%S}"
    database = f"bench_{secrets.token_hex(6)}"
    dsn = with_database(parsed.database_url, database)
    say(f"creating database {database}")
    asyncio.run(execute(parsed.database_url, f'CREATE DATABASE "{database}"'))
    try:
        migrate.upgrade(dsn)
        outcome = asyncio.run(Run(parsed, dsn).execute())
        postgresql = asyncio.run(server_version(dsn))
    finally:
        asyncio.run(execute(parsed.database_url, f'DROP DATABASE IF EXISTS "{database}" (FORCE)'))
        say(f"dropped database {database}")
    report = {
        "name": name,
        "started_at": started_at.isoformat(timespec="seconds"),
        "workers": parsed.workers,
        "client": parsed.client,
        "duration_seconds": parsed.duration,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "postgresql": postgresql,
            "load_average_after": [round(each, 2) for each in os.getloadavg()],
        },
        **outcome,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {path.relative_to(ROOT)}")
    if not parsed.no_docs:
        write_docs(report)
    sys.stdout.write(table(report))
    failed = report["verify"]["exit_code"] != 0 or any(
        not check["ok"]
        for result in report["scenarios"].values()
        for check in result.get("check", {}).values()
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
