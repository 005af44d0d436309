"""The embedded PostgreSQL (the `pgserver` package) used when `DATABASE_URL` is unset.

`pgserver` keeps a list of the processes using a data directory (`.handle_pids.json`): a
second `serve` on the same directory joins the running server, and the server stops when
the last process in the list leaves.

Two things this module adds to `pgserver`:
- leaving is explicit (`stop_embedded`), not only an `atexit` hook, which a process
  ended by a signal never runs;
- processes that ended without leaving (killed, crashed) are dropped from the list
  before anyone joins or leaves, so that one lost entry does not keep the server
  running forever.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

USERS_FILE = ".handle_pids.json"
"""`pgserver`'s list of the processes using a data directory."""


class EmbeddedServer(Protocol):
    pgdata: Path

    def get_uri(self, database: str | None = None) -> str: ...

    def get_pid(self) -> int | None: ...

    def cleanup(self) -> None: ...


def postgres_directory(data_dir: Path) -> Path:
    """Where the embedded cluster lives inside the data directory."""
    return data_dir.resolve() / "postgres"


def start_embedded(data_dir: Path) -> EmbeddedServer:
    """Start (or join) the embedded PostgreSQL under `data_dir/postgres`.

    The calling process is registered as a user of the server; it should call
    `stop_embedded` when done (`pgserver` also leaves at interpreter exit, but a process
    ended by a signal never gets there).
    """
    from pgserver.postgres_server import PostgresServer, get_server  # only embedded mode needs it

    pgdata = postgres_directory(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if pgdata.exists():
        forget_exited_users(pgdata)
    server: EmbeddedServer = get_server(pgdata, cleanup_mode="stop")
    # A handle this process left earlier is reused by get_server without registering again.
    with PostgresServer._lock:
        users = _read_users(pgdata) or []
        if os.getpid() not in users:
            _write_users(pgdata, [*users, os.getpid()])
    return server


def stop_embedded(server: EmbeddedServer) -> None:
    """Leave the embedded server; the last process leaving stops it (`pg_ctl stop`, fast)."""
    forget_exited_users(server.pgdata)
    server.cleanup()


def forget_exited_users(pgdata: Path) -> None:
    """Drop the processes that ended without leaving from the server's list of users."""
    from pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:
        users = _read_users(pgdata)
        alive = [pid for pid in users or [] if pid == os.getpid() or process_is_alive(pid)]
        if alive != users:
            logger.info("embedded PostgreSQL: users were %s, now %s", users, alive)
            _write_users(pgdata, alive)


def process_is_alive(pid: int) -> bool:
    """Whether `pid` names a running process (a zombie, already ended, does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    fields = stat.rpartition(")")[2].split()
    return not fields or fields[0] not in ("Z", "X")


def _read_users(pgdata: Path) -> list[int] | None:
    """The list of users; None when the file is unreadable (it is rewritten in place, so a
    process killed mid-write leaves it torn, and pgserver itself would then fail)."""
    path = pgdata / USERS_FILE
    try:
        users = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except ValueError:
        logger.warning("embedded PostgreSQL: unreadable %s, starting a new list", path)
        return None
    if not isinstance(users, list) or not all(type(pid) is int for pid in users):
        return None
    return users


def _write_users(pgdata: Path, users: list[int]) -> None:
    (pgdata / USERS_FILE).write_text(json.dumps(users))
