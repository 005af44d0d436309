"""The `shelfkeeper` command line, run as real processes (`python -m shelfkeeper.cli`).

Each process gets a clean environment: no `DATABASE_URL` unless a test sets one, no other
`SHELFKEEPER_*` variable, and a data directory of its own. Servers listen on a free port on
127.0.0.1, every wait is bounded, and every process started is ended in a `finally`.
The embedded-database end-to-end test is in `tests/db/test_embedded.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import httpx
import jwt
import pytest

from shelfkeeper.config import read_or_create_secret
from tests.database import server_url, with_database

CLI = (sys.executable, "-m", "shelfkeeper.cli")
COMMAND_TIMEOUT = 60
READY_TIMEOUT = 60
STOP_TIMEOUT = 30


def cli_environment(data_dir: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any Shelfkeeper setting, plus `variables`."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name != "DATABASE_URL" and not name.startswith("SHELFKEEPER_")
    }
    environment["SHELFKEEPER_DATA_DIR"] = str(data_dir)
    environment.update(variables)
    return environment


def run_cli(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *arguments],
        env=env,
        cwd=env["SHELFKEEPER_DATA_DIR"],
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


def start_cli(*arguments: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """Like `run_cli`, without waiting; the caller bounds `communicate` with a timeout."""
    return subprocess.Popen(
        [*CLI, *arguments],
        env=env,
        cwd=env["SHELFKEEPER_DATA_DIR"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A running `shelfkeeper serve`, its output going to a log file."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll `/readyz` until it answers 200; fail at once if the process ends."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"serve exited with {self.process.returncode}:\n{self.output()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        pytest.fail(f"serve not ready within {timeout} s:\n{self.output()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send `sig` and return the exit status."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {timeout} s after {sig.name}:\n{self.output()}")


@contextmanager
def serving(env: dict[str, str], log: Path, *arguments: str) -> Iterator[Server]:
    """`shelfkeeper serve --port <free port>`; killed on the way out if still running."""
    port = free_port()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), *arguments],
            env=env,
            cwd=env["SHELFKEEPER_DATA_DIR"],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Server(process, port, log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STOP_TIMEOUT)


# -- migrate ---------------------------------------------------------------------------


async def _execute(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _table_exists(url: str, table: str) -> bool:
    connection = await asyncpg.connect(url)
    try:
        return bool(await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", table))
    finally:
        await connection.close()


@pytest.fixture
def fresh_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An empty database on the test server (127.0.0.1:5432), dropped afterwards."""
    url = server_url(tmp_path_factory.mktemp("pg"))
    name = f"shelfkeeper_cli_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(url, f'CREATE DATABASE "{name}"'))
    try:
        yield with_database(url, name)
    finally:
        asyncio.run(_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_migrate_applies_the_migrations_to_database_url(
    fresh_database: str, tmp_path: Path
) -> None:
    # given
    env = cli_environment(tmp_path, DATABASE_URL=fresh_database)

    # when: checked before, migrated, checked after, migrated again
    unmigrated_check = run_cli("migrate", "--check", env=env)
    first = run_cli("migrate", env=env)
    check = run_cli("migrate", "--check", env=env)
    second = run_cli("migrate", env=env)

    # then
    assert unmigrated_check.returncode == 1, unmigrated_check.stderr
    assert "Target database is not up to date" in unmigrated_check.stderr
    assert "Traceback" not in unmigrated_check.stderr
    for result in (first, check, second):
        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith("ok\n")
    assert asyncio.run(_table_exists(fresh_database, "public.location"))
    assert not (tmp_path / "postgres").exists()


# -- serve with DATABASE_URL -----------------------------------------------------------


def test_serve_uses_database_url(database_url: str, tmp_path: Path) -> None:
    # given
    env = cli_environment(tmp_path, DATABASE_URL=database_url)

    # when
    with serving(env, tmp_path / "serve.log") as server:
        server.wait_ready()
        with server.client() as client:
            readiness = client.get("/readyz")
        status = server.stop()

    # then
    assert readiness.status_code == 200
    assert readiness.json() == {"status": "ready"}
    assert status == 0, server.output()
    assert not (tmp_path / "postgres").exists()
    assert "embedded PostgreSQL" not in server.output()


# -- tenants create --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant_id", "name", "culprit"),
    [
        ("Acme", "Acme", "'TENANT_ID'"),
        ("-a", "Acme", "'TENANT_ID'"),
        ("acme", "", "'--name'"),
    ],
)
def test_tenants_create_refuses_an_invalid_tenant(
    tenant_id: str, name: str, culprit: str, tmp_path: Path
) -> None:
    # given: no DATABASE_URL, so a valid request would start the embedded database
    env = cli_environment(tmp_path)

    # when
    result = run_cli("tenants", "create", "--name", name, "--", tenant_id, env=env)

    # then: a usage error naming the bad value; nothing started, nothing written
    assert result.returncode == 2, result.stderr
    assert f"Invalid value for {culprit}" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "postgres").exists()


def test_tenants_create_twice_is_a_tenant_exists_problem(database_url: str, tmp_path: Path) -> None:
    # given
    env = cli_environment(tmp_path, DATABASE_URL=database_url)
    tenant_id = f"t-{uuid.uuid4().hex[:12]}"

    # when
    first = run_cli("tenants", "create", tenant_id, "--name", "First", env=env)
    second = run_cli("tenants", "create", tenant_id, "--name", "Second", env=env)

    # then
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert (created["id"], created["name"], created["status"]) == (tenant_id, "First", "active")
    assert second.returncode == 1
    assert second.stdout == ""
    assert "Traceback" not in second.stderr
    problem = json.loads(second.stderr.strip().splitlines()[-1])
    assert problem["type"].endswith("/problems/tenant-exists")
    assert problem["status"] == 409
    assert tenant_id in problem["detail"]


# -- token and the built-in issuer's key -----------------------------------------------


def decode(token: str, key: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(
        token, key, algorithms=["HS256"], audience="shelfkeeper", issuer="shelfkeeper"
    )
    return claims


def test_token_key_is_generated_once_in_the_data_directory(tmp_path: Path) -> None:
    # given
    env = cli_environment(tmp_path)

    # when: two processes start together (both find no key), and a third comes later
    together = [
        start_cli("token", "--tenant", "acme", "--role", "admin", env=env),
        start_cli("token", "--platform", env=env),
    ]
    try:
        outputs = [process.communicate(timeout=COMMAND_TIMEOUT) for process in together]
    finally:
        for process in together:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=COMMAND_TIMEOUT)
    later = run_cli("token", "--tenant", "acme", "--role", "viewer", env=env)

    # then: one key, private to its owner, signed all three tokens
    for process, (_, stderr) in zip(together, outputs, strict=True):
        assert process.returncode == 0, stderr
    assert later.returncode == 0, later.stderr
    key_file = tmp_path / "jwt-secret"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert len(key) >= 32
    assert decode(outputs[0][0].strip(), key)["roles"] == ["admin"]
    assert decode(outputs[1][0].strip(), key)["roles"] == ["platform_admin"]
    assert decode(later.stdout.strip(), key)["roles"] == ["viewer"]
    assert [p.name for p in tmp_path.iterdir()] == ["jwt-secret"]


def test_jwt_secret_setting_overrides_the_generated_key(tmp_path: Path) -> None:
    # given
    configured = "configured-secret-0123456789abcdef0123456789"
    env = cli_environment(tmp_path, SHELFKEEPER_JWT_SECRET=configured)

    # when
    result = run_cli("token", "--tenant", "acme", "--role", "viewer", env=env)

    # then: signed with the configured key, and no key generated
    assert result.returncode == 0, result.stderr
    assert decode(result.stdout.strip(), configured)["roles"] == ["viewer"]
    assert not (tmp_path / "jwt-secret").exists()


def test_secret_created_concurrently_is_one_secret(tmp_path: Path) -> None:
    # given
    path = tmp_path / "keys" / "jwt-secret"
    threads = 16
    start = threading.Barrier(threads)
    secrets: list[str] = []

    def create() -> None:
        start.wait(timeout=10)
        secrets.append(read_or_create_secret(path))

    # when
    workers = [threading.Thread(target=create) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)

    # then: everyone got the one secret that is on disk, and no temporary file is left
    assert len(secrets) == threads
    assert set(secrets) == {path.read_text().strip()}
    assert len(secrets[0]) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["jwt-secret"]


def test_secret_is_read_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"

    assert read_or_create_secret(path) == read_or_create_secret(path)


def test_an_empty_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    path.write_text("\n")

    with pytest.raises(RuntimeError, match="is empty"):
        read_or_create_secret(path)
