"""One contract for every Cache: the in-process cache and the real Redis on
127.0.0.1:6379 (keys under a prefix unique to this run, deleted afterwards);
then Redis going away and coming back, on a redis-server of our own."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tstream_kit.store.cache import Cache, MemoryCache, RedisCache, make_cache

REDIS_URL = os.environ.get("TSTREAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RUN_PREFIX = f"tstream-test-{uuid.uuid4().hex[:12]}:"


def _redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def _need_redis() -> None:
    if not _redis_reachable():
        if os.environ.get("CI") == "true":
            pytest.fail("no Redis on 127.0.0.1:6379 (CI must run the cache contract against a real Redis)")
        pytest.skip("no Redis on 127.0.0.1:6379")


@pytest.fixture(params=["memory", "redis"])
async def cache(request):
    prefix = f"{RUN_PREFIX}{uuid.uuid4().hex[:8]}:"
    if request.param == "memory":
        c: Cache = MemoryCache(prefix)
    else:
        _need_redis()
        c = RedisCache(REDIS_URL, prefix)
    await c.start()
    yield c
    await c.clear()
    if isinstance(c, RedisCache):
        import redis.asyncio as aioredis
        r = aioredis.Redis.from_url(REDIS_URL)
        left = [k async for k in r.scan_iter(match=prefix + "*")]
        await r.aclose()
        assert left == [], f"keys left behind: {left}"
    await c.close()


# ------------------------------------------------------------------ contract
async def test_is_a_cache(cache) -> None:
    assert isinstance(cache, Cache)
    assert await cache.ping() is True
    assert cache.status()["status"] == "up"


async def test_miss_then_roundtrip_of_binary_values(cache) -> None:
    assert await cache.get("search:nyaa:big buck bunny") is None
    value = bytes(range(256)) * 40   # NULs, high bytes, 10 kB
    await cache.set("search:nyaa:big buck bunny", value, 60)
    assert await cache.get("search:nyaa:big buck bunny") == value


async def test_overwrite_and_delete(cache) -> None:
    await cache.set("magnet:" + "a" * 40, b"one", 60)
    await cache.set("magnet:" + "a" * 40, b"two", 60)
    assert await cache.get("magnet:" + "a" * 40) == b"two"
    await cache.delete("magnet:" + "a" * 40)
    assert await cache.get("magnet:" + "a" * 40) is None
    await cache.delete("magnet:" + "b" * 40)   # deleting a missing key is fine


async def test_entries_expire_after_their_ttl(cache) -> None:
    await cache.set("short", b"x", 0.3)
    await cache.set("long", b"y", 30)
    assert await cache.get("short") == b"x"
    await asyncio.sleep(0.45)
    assert await cache.get("short") is None
    assert await cache.get("long") == b"y"


async def test_zero_ttl_stores_nothing(cache) -> None:
    await cache.set("k", b"v", 0)
    assert await cache.get("k") is None


async def test_prefixes_isolate_and_clear_removes_only_its_own(cache) -> None:
    other = type(cache)(REDIS_URL, RUN_PREFIX + "other:") if isinstance(cache, RedisCache) else MemoryCache(RUN_PREFIX + "other:")
    if isinstance(cache, MemoryCache):
        other._data = cache._data   # one process-wide store, two prefixes
    try:
        await cache.set("k", b"mine", 60)
        await other.set("k", b"theirs", 60)
        assert await cache.get("k") == b"mine" and await other.get("k") == b"theirs"
        assert await cache.clear() == 1
        assert await cache.get("k") is None and await other.get("k") == b"theirs"
    finally:
        await other.clear()
        if isinstance(other, RedisCache):
            await other.close()


async def test_concurrent_use(cache) -> None:
    await asyncio.gather(*(cache.set(f"c{i}", str(i).encode(), 60) for i in range(50)))
    got = await asyncio.gather(*(cache.get(f"c{i}") for i in range(50)))
    assert got == [str(i).encode() for i in range(50)]


async def test_hundreds_of_concurrent_gets_are_all_hits(cache) -> None:
    """200 concurrent searches ask 3 providers each at once (bench/load_bench.py): 600 gets must
    all be hits and Redis must stay "up". redis-py's pool raised "Too many connections" past 100
    at once, which the cache read as Redis being down: the searches went to the indexers."""
    await asyncio.gather(*(cache.set(f"k{i}", b"v%d" % i, 60) for i in range(20)))
    got = await asyncio.gather(*(cache.get(f"k{i % 20}") for i in range(600)))
    assert got == [b"v%d" % (i % 20) for i in range(600)]
    assert cache.status()["status"] == "up"
    await asyncio.gather(*(cache.set(f"s{i}", b"x", 60) for i in range(300)))
    assert await cache.get("s299") == b"x" and cache.status()["status"] == "up"


def test_make_cache_picks_the_backend() -> None:
    assert isinstance(make_cache(""), MemoryCache)
    assert isinstance(make_cache("redis://127.0.0.1:1/0"), RedisCache)


def test_memory_cache_is_bounded() -> None:
    async def run() -> None:
        c = MemoryCache(max_entries=3)
        for i in range(5):
            await c.set(str(i), b"x", 60)
        assert [await c.get(str(i)) for i in range(5)] == [None, None, b"x", b"x", b"x"]
    asyncio.run(run())


# ------------------------------------------------ Redis going away and back
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server of our own on an unused port (we stop it; never the shared one)."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path):
    if not shutil.which("redis-server"):
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    r = OwnRedis(tmp_path / "redis")
    r.start()
    yield r
    r.stop()


async def test_redis_outage_is_a_miss_then_caching_resumes(own_redis) -> None:
    c = RedisCache(own_redis.url, "t:", retry_interval=0.2, monitor_interval=0.2)
    await c.start()
    try:
        await c.set("k", b"v", 60)
        assert await c.get("k") == b"v" and c.status()["status"] == "up"
        own_redis.stop()
        started = time.monotonic()
        assert await c.get("k") is None          # a miss, not an exception
        await c.set("k2", b"v2", 60)              # a no-op
        assert time.monotonic() - started < 2.0
        assert c.status()["status"] == "down" and "error" in c.status()
        own_redis.start()                         # back (empty: it keeps nothing on disk)
        deadline = time.monotonic() + 5
        while c.status()["status"] != "up" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert c.status()["status"] == "up"       # the monitor noticed without any request
        await c.set("k3", b"v3", 60)
        assert await c.get("k3") == b"v3"
    finally:
        await c.close()
