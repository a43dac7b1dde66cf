"""Cache protocol and its two implementations: Redis, and an in-process TTL cache.

Values are bytes; keys are strings (``search:<provider>:<normalised query>``,
``magnet:<infohash>``) under a per-install prefix. A cache never raises to its
caller: a Redis that is down is a miss on ``get`` and a no-op on ``set``, and
:meth:`status` says so (``/api/health``). While down, Redis is tried again at
most every :data:`RETRY_INTERVAL` seconds (so a search never waits on a dead
Redis more than once per interval), and a background ping notices both the
outage and the return.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol, runtime_checkable

log = logging.getLogger("tstream.cache")

__all__ = ["Cache", "MemoryCache", "RedisCache", "make_cache", "redact_url"]

#: seconds between two attempts to reach a Redis that failed
RETRY_INTERVAL = 1.0
#: a Redis command that takes longer than this counts as Redis being down
OP_TIMEOUT = 0.5
#: Redis connections of one process at most; more concurrent commands wait for a free one
#: (redis-py's default pool raises "Too many connections" past 100 instead, which read as an
#: outage: 200 concurrent searches, 3 providers each, ran uncached; bench/load_bench.py)
MAX_CONNECTIONS = 32


@runtime_checkable
class Cache(Protocol):
    backend: str

    async def get(self, key: str) -> bytes | None: ...
    async def set(self, key: str, value: bytes, ttl: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def ping(self) -> bool: ...
    async def clear(self) -> int: ...
    def status(self) -> dict[str, Any]: ...
    async def start(self) -> None: ...
    async def close(self) -> None: ...


class MemoryCache:
    """A bounded in-process TTL cache (least recently used entries go first)."""

    backend = "memory"

    def __init__(self, prefix: str = "", max_entries: int = 10_000) -> None:
        self.prefix = prefix
        self.max_entries = max_entries
        self._data: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        k = self.prefix + key
        item = self._data.get(k)
        if item is None:
            return None
        expires, value = item
        if expires <= time.monotonic():
            del self._data[k]
            return None
        self._data.move_to_end(k)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0:
            return
        k = self.prefix + key
        self._data[k] = (time.monotonic() + ttl, bytes(value))
        self._data.move_to_end(k)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    async def delete(self, key: str) -> None:
        self._data.pop(self.prefix + key, None)

    async def ping(self) -> bool:
        return True

    async def clear(self) -> int:
        keys = [k for k in self._data if k.startswith(self.prefix)]
        for k in keys:
            del self._data[k]
        return len(keys)

    def status(self) -> dict[str, Any]:
        return {"backend": self.backend, "status": "up", "entries": len(self._data)}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._data.clear()


class RedisCache:
    """Redis through ``redis.asyncio``; survives Redis going away and coming back."""

    backend = "redis"

    def __init__(self, url: str, prefix: str = "", *, op_timeout: float = OP_TIMEOUT,
                 retry_interval: float = RETRY_INTERVAL, monitor_interval: float = 2.0) -> None:
        import redis.asyncio as aioredis
        self.url = url
        self.prefix = prefix
        self.op_timeout = op_timeout
        self.retry_interval = retry_interval
        self.monitor_interval = monitor_interval
        # A blocking pool: a command waits (within the op timeout) for a free connection
        # rather than failing; Redis answers one at a time anyway, so a few dozen suffice.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=MAX_CONNECTIONS, timeout=op_timeout,
            socket_timeout=op_timeout, socket_connect_timeout=op_timeout,
            retry_on_timeout=False, health_check_interval=0)
        self._redis = aioredis.Redis.from_pool(pool)   # closes the pool with the client
        self._up: bool | None = None
        self._last_error: str | None = None
        self._retry_at = 0.0
        self._monitor: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- plumbing
    def _available(self) -> bool:
        return self._up is not False or time.monotonic() >= self._retry_at

    def _failed(self, exc: BaseException) -> None:
        if self._up is not False:
            log.warning("Redis at %s is down (%s): searches run uncached until it returns",
                        redact_url(self.url), exc or type(exc).__name__)
        self._up = False
        self._last_error = f"{type(exc).__name__}: {exc}"[:200]
        self._retry_at = time.monotonic() + self.retry_interval

    def _ok(self) -> None:
        if self._up is False:
            log.warning("Redis at %s is back: caching resumes", redact_url(self.url))
        self._up = True
        self._last_error = None

    async def _run(self, coro: Any) -> Any:
        import redis.exceptions
        try:
            result = await asyncio.wait_for(coro, self.op_timeout * 2)
        except (redis.exceptions.RedisError, OSError, asyncio.TimeoutError) as exc:
            self._failed(exc)
            raise _Down() from exc
        self._ok()
        return result

    # ------------------------------------------------------------------ API
    async def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        try:
            value = await self._run(self._redis.get(self.prefix + key))
        except _Down:
            return None
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0 or not self._available():
            return
        try:
            await self._run(self._redis.set(self.prefix + key, value, px=max(1, int(ttl * 1000))))
        except _Down:
            pass

    async def delete(self, key: str) -> None:
        if not self._available():
            return
        try:
            await self._run(self._redis.delete(self.prefix + key))
        except _Down:
            pass

    async def ping(self) -> bool:
        try:
            await self._run(self._redis.ping())
            return True
        except _Down:
            return False

    async def clear(self) -> int:
        """Delete every key under this cache's prefix (never the whole database)."""
        if not self.prefix:
            raise ValueError("refusing to clear a Redis cache without a key prefix")
        n = 0
        try:
            keys = [k async for k in self._redis.scan_iter(match=_glob_escape(self.prefix) + "*", count=500)]
            for i in range(0, len(keys), 500):
                n += await self._run(self._redis.delete(*keys[i:i + 500]))
        except _Down:
            pass
        return n

    def status(self) -> dict[str, Any]:
        state = {None: "unknown", True: "up", False: "down"}[self._up]
        out: dict[str, Any] = {"backend": self.backend, "status": state, "url": redact_url(self.url)}
        if self._last_error:
            out["error"] = self._last_error
        return out

    async def start(self) -> None:
        await self.ping()
        if self._monitor is None:
            self._monitor = asyncio.create_task(self._watch(), name="redis-monitor")

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.monitor_interval)
            await self.ping()

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            try:
                await self._monitor
            except asyncio.CancelledError:
                pass
            self._monitor = None
        try:
            await self._redis.aclose()
        except Exception:  # pragma: no cover - closing a broken connection
            pass


class _Down(Exception):
    pass


def _glob_escape(s: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


def redact_url(url: str) -> str:
    """``redis://:secret@host`` -> ``redis://:***@host`` (for logs and health).

    >>> redact_url("redis://user:pw@127.0.0.1:6379/0")
    'redis://user:***@127.0.0.1:6379/0'
    """
    import urllib.parse
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def make_cache(redis_url: str, prefix: str = "") -> MemoryCache | RedisCache:
    return RedisCache(redis_url, prefix) if redis_url else MemoryCache(prefix)
