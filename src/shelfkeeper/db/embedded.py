"""The embedded PostgreSQL (the `pgserver` package) used when `DATABASE_URL` is unset.

`pgserver` keeps a list of the processes using a data directory: a second `serve` on the
same directory reuses the running server, and the server stops when the last user exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class EmbeddedServer(Protocol):
    def get_uri(self, database: str | None = None) -> str: ...

    def cleanup(self) -> None: ...


def start_embedded(data_dir: Path) -> EmbeddedServer:
    """Start (or join) the embedded PostgreSQL under `data_dir/postgres`."""
    from pgserver.postgres_server import get_server  # lazily: only embedded mode needs it

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server: EmbeddedServer = get_server(data_dir / "postgres", cleanup_mode="stop")
    return server
