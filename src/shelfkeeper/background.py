"""The service's background work: what `serve` runs beside the API and `worker` runs alone.

Each loop runs until `stop` is set and survives its own failures (it logs and retries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database
from shelfkeeper.event import relay, webhook_dispatcher


async def run(database: Database, settings: Settings, *, stop: asyncio.Event) -> None:
    """Run the event relay and every configured dispatcher until `stop` is set."""
    loops: list[Coroutine[Any, Any, None]] = [
        relay.run(database, stop=stop, poll_interval=settings.relay_poll_interval_seconds),
        webhook_dispatcher.run(database, settings, stop=stop),
    ]
    if settings.nats_url is not None:
        from shelfkeeper.event import broker  # imports the NATS client only when configured

        loops.append(broker.run(database, settings, stop=stop))
    await asyncio.gather(*loops)
