"""Rate limits per key (the API keys them by tenant), on the `limits` library.

The algorithm: a moving window. A quota of `requests_per_second` with a `burst` lets a key
make at most `burst` requests in any window of `burst / requests_per_second` seconds:
a client may spend the whole burst at once, and then gets a new request for each one that
leaves the window, so over any longer stretch it averages `requests_per_second`. (1000/s
with a burst of 2000: at most 2000 requests in any 2 seconds.)

Why this and not the others `limits` offers: a fixed window lets twice the quota through
around each window boundary, and the sliding-window counter only approximates the count
from two fixed windows; the moving window counts each request's own timestamp, so the
quota holds exactly in every window. `limits` has no token bucket; the moving window is
the closest exact equivalent (a token bucket would also let `requests_per_second` more in
through the window, the moving window does not). A refused request is not counted, so a
client hammering away does not extend its own wait.

`limits` counts windows in whole seconds (and Redis expires keys by the second), so when
`burst` is not a multiple of `requests_per_second` the window is rounded up: 2/s with a
burst of 3 is 3 requests in any 2 seconds, a sustained 1.5/s, never more than configured.
A `burst` below `requests_per_second` is raised to it (the finest window is one second).
A quota with a zero in it is no limit at all.

Storage: in the process's memory by default (each worker process counts on its own), or
Redis when a URL is given, shared by every process and instance using it. Both go through
`limits`' asyncio API, so the event loop never blocks. If Redis cannot be reached the
limiter fails open: the request is served without a limit, a warning is logged (at most
once per `failure_backoff_seconds`, during which Redis is not tried again, so a dead Redis
costs nothing per request).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import HTTPConnection

from shelfkeeper.kit import context
from shelfkeeper.kit.problems import Problem

logger = logging.getLogger("shelfkeeper.ratelimit")

NAMESPACE = "shelfkeeper"
REDIS_SCHEMES = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}
REDIS_TIMEOUT_SECONDS = 0.5
"""Longest wait for Redis per request (connecting, or an answer) before failing open."""


class RateLimited(Problem):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


@dataclass(frozen=True)
class Quota:
    """`requests_per_second` on average, with bursts of up to `burst` at once."""

    requests_per_second: int
    burst: int

    @property
    def enabled(self) -> bool:
        return self.requests_per_second > 0 and self.burst > 0

    def window(self) -> RateLimitItem:
        """The moving window that enforces this quota (see the module docstring)."""
        amount = max(self.burst, self.requests_per_second)
        seconds = math.ceil(amount / self.requests_per_second)
        return RateLimitItemPerSecond(amount, seconds, namespace=NAMESPACE)


@dataclass(frozen=True)
class Decision:
    """The outcome of one request against its quota, and the headers that tell the client.

    Headers after the IETF `RateLimit` header fields draft: `RateLimit-Limit` (requests per
    window), `RateLimit-Remaining`, `RateLimit-Reset` (seconds until a request leaves the
    window, making room for another), `RateLimit-Policy` (`<limit>;w=<window seconds>`),
    and on a refusal `Retry-After` (seconds, at least 1).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int
    window_seconds: int

    @property
    def retry_after_seconds(self) -> int:
        return max(1, self.reset_seconds)

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": f"{self.limit};w={self.window_seconds}",
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return headers


def storage_for(redis_url: str | None) -> Storage:
    """In-memory storage, or Redis at `redis_url` (`redis://`, `rediss://` or `unix://`).

    Raises ValueError for another scheme: a typo must stop the service at startup rather
    than quietly count in memory.
    """
    if redis_url is None:
        return MemoryStorage()
    scheme, separator, rest = redis_url.partition("://")
    if not separator or scheme not in REDIS_SCHEMES:
        raise ValueError("the Redis URL must start with redis://, rediss:// or unix://")
    return RedisStorage(
        f"{REDIS_SCHEMES[scheme]}://{rest}",
        wrap_exceptions=True,
        key_prefix=f"{NAMESPACE}-ratelimit",
        connect_timeout=REDIS_TIMEOUT_SECONDS,
        stream_timeout=REDIS_TIMEOUT_SECONDS,
    )


class RateLimiter:
    """Counts requests per key against a quota (`default` for keys that bring none)."""

    def __init__(
        self,
        *,
        default: Quota,
        redis_url: str | None = None,
        failure_backoff_seconds: float = 5.0,
    ) -> None:
        self.default = default
        self.shared = redis_url is not None
        self.storage = storage_for(redis_url)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.failure_backoff_seconds = failure_backoff_seconds
        self._skip_until = 0.0

    async def hit(self, key: str, quota: Quota | None = None) -> Decision | None:
        """Count one request for `key`. None: no limit applies (the quota is off, or the
        storage failed and the limiter fails open)."""
        quota = quota or self.default
        if not quota.enabled or time.monotonic() < self._skip_until:
            return None
        window = quota.window()
        try:
            allowed = await self.strategy.hit(window, key)
            stats = await self.strategy.get_window_stats(window, key)
        except Exception as error:
            self._skip_until = time.monotonic() + self.failure_backoff_seconds
            logger.warning(
                "rate limiting off for %.0f s: its storage failed (%s: %s)",
                self.failure_backoff_seconds,
                type(error).__name__,
                error,
            )
            return None
        return Decision(
            allowed=allowed,
            limit=window.amount,
            remaining=max(0, stats.remaining),
            reset_seconds=max(0, math.ceil(stats.reset_time - time.time())),
            window_seconds=window.get_expiry(),
        )

    async def close(self) -> None:
        """Release the Redis connections, if any."""
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        pool = getattr(client, "connection_pool", None)
        if pool is not None:
            pool.disconnect()


async def enforce(connection: HTTPConnection, *, key: str, quota: Quota | None) -> None:
    """Count this request against `key`'s quota (`app.state.rate_limiter`).

    The response will carry the `RateLimit-*` headers. Raises RateLimited (429, with
    `Retry-After`) when the quota is spent.
    """
    limiter: RateLimiter | None = getattr(connection.app.state, "rate_limiter", None)
    if limiter is None:
        return
    decision = await limiter.hit(key, quota)
    if decision is None:
        return
    headers = decision.headers()
    context.add_response_headers(connection, headers)
    if not decision.allowed:
        raise RateLimited(
            f"More than {decision.limit} requests in {decision.window_seconds} s; "
            f"retry in {decision.retry_after_seconds} s.",
            headers=headers,
        )
