"""The embedded PostgreSQL: `shelfkeeper serve` with `DATABASE_URL` unset, end to end.

One embedded server is started once and used through every step (starting PostgreSQL is
the slow part): a second `serve` and the other commands join it, and it stops when the
last process using it leaves, also when another one was killed without leaving.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shelfkeeper.db.embedded import USERS_FILE, forget_exited_users, process_is_alive
from tests.test_cli import cli_environment, run_cli, serving

STOP_TIMEOUT = 30


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid in `postmaster.pid`, which PostgreSQL removes when it stops."""
    try:
        return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_until_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_is_alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A data directory, removed afterwards with its embedded PostgreSQL stopped if a failed
    test left it running (SIGINT: fast shutdown).

    Not under `tmp_path`: as root, pgserver runs PostgreSQL as another user and opens up
    the data directory's parents for it, but every pytest session starting meanwhile
    closes `/tmp/pytest-of-root` again (mode 0700).
    """
    data_dir = Path(tempfile.mkdtemp(prefix="shelfkeeper-embedded-"))
    try:
        yield data_dir
    finally:
        pid = postmaster_pid(data_dir)
        if pid is not None and process_is_alive(pid):
            os.kill(pid, signal.SIGINT)
            wait_until_gone(pid, STOP_TIMEOUT)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_serve_runs_on_the_embedded_database_and_stops_it(embedded_data_dir: Path) -> None:
    data_dir = embedded_data_dir
    env = cli_environment(data_dir)

    with serving(env, data_dir / "first.log") as first:
        # given: the first serve starts PostgreSQL in the data directory
        first.wait_ready()
        postgres = postmaster_pid(data_dir)
        assert postgres is not None
        assert process_is_alive(postgres)

        # when: other commands join the running database
        tenant = run_cli("tenants", "create", "acme", "--name", "Acme", env=env)
        assert tenant.returncode == 0, tenant.stderr
        assert json.loads(tenant.stdout)["id"] == "acme"
        token = run_cli("token", "--tenant", "acme", "--role", "admin", env=env)
        assert token.returncode == 0, token.stderr
        headers = {"Authorization": f"Bearer {token.stdout.strip()}"}

        # then: the tenant they created is served
        with first.client() as client:
            created = client.post(
                "/api/v1/acme/locations",
                json={"code": "WH-1", "name": "Main warehouse", "kind": "warehouse"},
                headers=headers,
            )
            assert created.status_code == 201, created.text
            listed = client.get("/api/v1/acme/locations", headers=headers)
        assert listed.status_code == 200
        assert [location["id"] for location in listed.json()["data"]] == [created.json()["id"]]
        assert postmaster_pid(data_dir) == postgres  # `tenants create` left it running

        # when: a second serve starts on the same data directory
        with serving(env, data_dir / "second.log") as second:
            second.wait_ready()

            # then: it reuses the running PostgreSQL and sees the same data
            assert postmaster_pid(data_dir) == postgres
            with second.client() as client:
                seen = client.get("/api/v1/acme/locations", headers=headers)
            assert seen.status_code == 200
            assert seen.json()["data"] == listed.json()["data"]

            # when: the second one stops
            assert second.stop() == 0, second.output()

        # then: the first one still answers, on the same PostgreSQL
        with first.client() as client:
            assert client.get("/readyz").status_code == 200
            assert client.get("/api/v1/acme/locations", headers=headers).status_code == 200
        assert postmaster_pid(data_dir) == postgres

        # when: a third serve joins and is killed, so it never leaves
        with serving(env, data_dir / "third.log") as third:
            third.wait_ready()
            third.process.kill()
            third.process.wait(STOP_TIMEOUT)

        # and: the first one, now the last live user, stops
        assert first.stop() == 0, first.output()

    # then: PostgreSQL stopped with it
    assert wait_until_gone(postgres, STOP_TIMEOUT), "embedded PostgreSQL still running"
    assert postmaster_pid(data_dir) is None
    log = first.output()
    assert "Traceback" not in log
    assert "Finished server process" in log


# -- the list of processes using the embedded server -----------------------------------


def exited_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(STOP_TIMEOUT)
    return process.pid


def test_exited_users_are_forgotten(tmp_path: Path) -> None:
    # given: this process, a running one and an ended one use the server
    users_file = tmp_path / USERS_FILE
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as running:
        try:
            gone = exited_pid()
            users_file.write_text(json.dumps([running.pid, gone, os.getpid()]))

            # when
            forget_exited_users(tmp_path)

            # then
            assert json.loads(users_file.read_text()) == [running.pid, os.getpid()]
        finally:
            running.kill()


def test_a_torn_list_of_users_is_started_afresh(tmp_path: Path) -> None:
    users_file = tmp_path / USERS_FILE
    users_file.write_text("[12, 3")

    forget_exited_users(tmp_path)

    assert json.loads(users_file.read_text()) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_zombie_is_not_alive() -> None:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + STOP_TIMEOUT
        while Path(f"/proc/{process.pid}/stat").read_text().split(") ")[1][0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)

        assert not process_is_alive(process.pid)
    finally:
        process.wait(STOP_TIMEOUT)
